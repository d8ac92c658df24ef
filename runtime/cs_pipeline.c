#include "cs_pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "cs_gaps.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_parse.h"
#include "cs_time.h"

#define RETRY_BASE_MS 100
#define RETRY_MAX_MS 30000

/* A batch of records in order: window rows, or trades for a pipeline
 * without a window. Owned copies. */
typedef struct recs {
  cs_row *rows;      /* each ext_json owned */
  cs_trade **trades; /* cs_trade_clone copies */
  size_t n, cap;
} recs;

typedef struct sink_slot {
  cs_sink *sink;
  recs pending; /* records the sink answered RETRY for */
  uv_timer_t timer;
  uint64_t backoff_ms;
  int flushing; /* 1: the final flush answered RETRY; 2: flushed */
  int busy;     /* the sink answered CS_SINK_BUSY: waiting for cs_sink_ready */
  struct cs_pipeline *p;
  /* For metrics and health (cs_pipeline_collect/health). */
  uint64_t taken, acked, retries;
  int64_t unacked_since_us; /* mono: last progress while records are unacknowledged */
  char last_error[160];     /* why the last retry was needed */
  cs_hist window_to_ack;    /* live: window end -> row acknowledged, µs */
  struct ack_mark {
    uint64_t seq;           /* the row is acknowledged once `acked` reaches it */
    int64_t window_end_us;
  } *marks;                 /* asynchronous sinks, live: rows not yet acknowledged */
  size_t mark_head, mark_n, mark_cap;
} sink_slot;

typedef enum { ST_NEW, ST_RUNNING, ST_DRAINING, ST_DONE } state;

struct cs_pipeline {
  char *name;
  char label[96];
  cs_source *src;
  sink_slot *sinks;
  size_t nsinks;
  cs_window_conf wconf;
  cs_window *window; /* NULL: trades go straight to the sinks */
  cs_hooks hooks;
  int has_hooks;
  cs_parser *parser;
  recs batch;            /* records made while processing one line */
  cs_trade *scratch;     /* trades laid out for write_trades */
  size_t cap_scratch;
  state st;
  int interrupted, src_paused, src_stopped;
  char *failure;
  cs_pipeline_stats stats;
  cs_log_limiter lim_invalid, lim_late, lim_dup, lim_hook, lim_retry;
  cs_pipeline_done_fn on_done;
  void *done_ud;
  uint64_t lineno; /* line being processed, for messages */
  /* A sink forwards exchange frames (cs_sink.frames): the line being
   * processed, and the batch index of the trade that carries it. */
  int want_frames;
  const char *frame;
  size_t frame_len, frame_carrier;
  char where[128];  /* the line's position, for messages (at()) */
  /* Sources with their own event clock: what each advance emitted, to
   * find the durable watermark (src_durable). */
  struct dmark {
    int64_t wm;
    uint64_t seq; /* records handed to the sinks when the watermark reached wm */
  } *dmarks;
  size_t dmark_head, dmark_n, dmark_cap;
  int64_t durable_wm;
  int64_t max_end; /* latest end of an emitted window */
  int64_t ext_wm;  /* without a window: the watermark the source moved to */
  cs_gaps *gaps;
  /* The feed's clock: the newest message time seen, and when (wall). */
  int has_feed;
  int64_t feed_us, feed_wall_us, max_trade_us;
  uv_timer_t clock;
  int clock_started;
  cs_log_limiter lim_gap, lim_skew;
  int64_t ack_timeout_us;
};

static int recs_reserve(recs *r, size_t k, int trades) {
  if (r->n + k <= r->cap) return 0;
  size_t nc = r->cap ? r->cap : 16;
  while (nc < r->n + k) nc *= 2;
  if (trades) {
    cs_trade **nt = realloc(r->trades, nc * sizeof *nt);
    if (!nt) return -1;
    r->trades = nt;
  } else {
    cs_row *nr = realloc(r->rows, nc * sizeof *nr);
    if (!nr) return -1;
    r->rows = nr;
  }
  r->cap = nc;
  return 0;
}

static int recs_add_rows(recs *r, const cs_row *rows, size_t k) {
  if (recs_reserve(r, k, 0) != 0) return -1;
  for (size_t i = 0; i < k; i++) {
    cs_row *d = &r->rows[r->n];
    *d = rows[i];
    if (rows[i].ext_json && !(d->ext_json = strdup(rows[i].ext_json))) return -1;
    r->n++;
  }
  return 0;
}

static int recs_add_trades(recs *r, cs_trade *const *trades, size_t k) {
  if (recs_reserve(r, k, 1) != 0) return -1;
  for (size_t i = 0; i < k; i++) {
    if (!(r->trades[r->n] = cs_trade_clone(trades[i]))) return -1;
    r->n++;
  }
  return 0;
}

static int recs_append(recs *dst, const recs *src) {
  return src->trades ? recs_add_trades(dst, src->trades, src->n) : recs_add_rows(dst, src->rows, src->n);
}

static void recs_clear(recs *r) {
  for (size_t i = 0; i < r->n; i++) {
    if (r->rows) free((char *)r->rows[i].ext_json);
    if (r->trades) free(r->trades[i]);
  }
  r->n = 0;
}

static void recs_free(recs *r) {
  recs_clear(r);
  free(r->rows);
  free(r->trades);
  memset(r, 0, sizeof *r);
}

cs_pipeline *cs_pipeline_create(const char *name, cs_err *err) {
  cs_pipeline *p = calloc(1, sizeof *p);
  if (!p || !(p->name = strdup(name)) || !(p->parser = cs_parser_create()) || !(p->gaps = cs_gaps_create())) {
    cs_pipeline_destroy(p);
    cs_err_set(err, "out of memory");
    return NULL;
  }
  snprintf(p->label, sizeof p->label, "pipeline %s", name);
  cs_log_limiter init = CS_LOG_LIMITER_INIT;
  p->lim_invalid = p->lim_late = p->lim_dup = p->lim_hook = p->lim_retry = p->lim_gap = p->lim_skew = init;
  p->ack_timeout_us = CS_METRICS_DEFAULT_ACK_TIMEOUT_US;
  return p;
}

void cs_pipeline_destroy(cs_pipeline *p) {
  if (!p) return;
  cs_source_destroy(p->src);
  for (size_t i = 0; i < p->nsinks; i++) {
    recs_free(&p->sinks[i].pending);
    free(p->sinks[i].marks);
    cs_sink_destroy(p->sinks[i].sink);
  }
  free(p->sinks);
  recs_free(&p->batch);
  free(p->scratch);
  cs_window_destroy(p->window);
  cs_parser_destroy(p->parser);
  cs_gaps_destroy(p->gaps);
  free(p->dmarks);
  free(p->failure);
  free(p->name);
  free(p);
}

const char *cs_pipeline_name(const cs_pipeline *p) { return p->name; }
const cs_pipeline_stats *cs_pipeline_get_stats(const cs_pipeline *p) { return &p->stats; }
const char *cs_pipeline_failure(const cs_pipeline *p) { return p->failure; }

void cs_pipeline_set_source(cs_pipeline *p, cs_source *src) {
  cs_source_destroy(p->src);
  p->src = src;
}

int cs_pipeline_add_sink(cs_pipeline *p, cs_sink *sink, cs_err *err) {
  sink_slot *ns = realloc(p->sinks, (p->nsinks + 1) * sizeof *ns);
  if (!ns) {
    cs_sink_destroy(sink);
    return cs_err_set(err, "out of memory");
  }
  p->sinks = ns;
  memset(&p->sinks[p->nsinks], 0, sizeof *ns);
  p->sinks[p->nsinks].sink = sink;
  p->nsinks++;
  return 0;
}

void cs_pipeline_set_hooks(cs_pipeline *p, const cs_hooks *hooks) {
  p->hooks = *hooks;
  p->has_hooks = hooks->filter || hooks->map;
}

static void fail(cs_pipeline *p, const char *fmt, const char *detail);
static void maybe_finish(cs_pipeline *p);

static void on_row(void *ud, const cs_row *row) {
  cs_pipeline *p = ud;
  p->stats.windows++;
  if (row->window_end_us > p->max_end) p->max_end = row->window_end_us;
  if (recs_add_rows(&p->batch, row, 1) != 0) fail(p, "out of memory keeping %s rows", "emitted");
}

static void update_pause(cs_pipeline *p) {
  int backlog = 0;
  for (size_t i = 0; i < p->nsinks; i++) backlog |= p->sinks[i].pending.n > 0;
  if (!p->src || p->src_stopped) return;
  if (backlog && !p->src_paused) {
    p->src_paused = 1;
    p->src->vt->pause(p->src);
  } else if (!backlog && p->src_paused) {
    p->src_paused = 0;
    p->src->vt->resume(p->src);
  }
}

static uint64_t jitter(uint64_t ms) {
  /* Equal jitter: half fixed, half random, so retries of several
   * pipelines spread out yet never come back at once. */
  return ms / 2 + (uint64_t)rand() % (ms / 2 + 1);
}

static void on_retry(uv_timer_t *t);

static void schedule_retry(sink_slot *s, const char *why) {
  cs_pipeline *p = s->p;
  if (!why[0]) {
    /* A flush with nothing wrong, only acknowledgements still to come:
     * look again soon, without counting a retry. */
    uv_timer_start(&s->timer, on_retry, 50, 0);
    return;
  }
  p->stats.sink_retries++;
  s->retries++;
  snprintf(s->last_error, sizeof s->last_error, "%s", why);
  s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : RETRY_BASE_MS;
  if (s->backoff_ms > RETRY_MAX_MS) s->backoff_ms = RETRY_MAX_MS;
  uint64_t delay = jitter(s->backoff_ms);
  cs_log_limited(&p->lim_retry, CS_LOG_WARN, s->sink->label, "%s; %zu records kept, retrying in %llu ms", why,
                 s->pending.n, (unsigned long long)delay);
  uv_timer_start(&s->timer, on_retry, delay, 0);
}

/* One write of a batch to a sink. */
static cs_sink_status sink_write(cs_pipeline *p, sink_slot *s, const recs *r, cs_err *err) {
  if (!r->trades) return s->sink->vt->write(s->sink, r->rows, r->n, err);
  if (r->n > p->cap_scratch) {
    cs_trade *ns = realloc(p->scratch, r->n * sizeof *ns);
    if (!ns) {
      cs_err_set(err, "out of memory");
      return CS_SINK_RETRY;
    }
    p->scratch = ns;
    p->cap_scratch = r->n;
  }
  for (size_t i = 0; i < r->n; i++) p->scratch[i] = *r->trades[i];
  return s->sink->vt->write_trades(s->sink, p->scratch, r->n, err);
}

/* Live window rows: the time from a window's end to its row's
 * acknowledgement. Asynchronous sinks: kept until acknowledged. */
static void on_written(cs_pipeline *p, sink_slot *s, const recs *r) {
  size_t n = r->n;
  int marks = p->src && p->src->live && !r->trades;
  if (!s->sink->vt->async_ack) {
    p->stats.rows_acked += n;
    s->taken += n;
    s->acked += n;
    if (marks) {
      int64_t now = cs_time_wall_us();
      for (size_t i = 0; i < n; i++) cs_hist_add(&s->window_to_ack, now - r->rows[i].window_end_us);
    }
    return;
  }
  if (s->taken == s->acked) s->unacked_since_us = cs_time_mono_us();
  for (size_t i = 0; marks && i < n; i++) {
    if (s->mark_n == s->mark_cap) { /* a ring: grow by unrolling it */
      size_t nc = s->mark_cap ? s->mark_cap * 2 : 64;
      struct ack_mark *nm = malloc(nc * sizeof *nm);
      if (!nm) break; /* only the latency figure suffers */
      for (size_t k = 0; k < s->mark_n; k++) nm[k] = s->marks[(s->mark_head + k) % s->mark_cap];
      free(s->marks);
      s->marks = nm;
      s->mark_cap = nc;
      s->mark_head = 0;
    }
    s->marks[(s->mark_head + s->mark_n++) % s->mark_cap] =
        (struct ack_mark){s->taken + i + 1, r->rows[i].window_end_us};
  }
  s->taken += n;
}

/* Hands records to one sink, honouring the order of what is already queued. */
static void write_sink(sink_slot *s, const recs *r) {
  cs_pipeline *p = s->p;
  cs_err err = {{0}};
  if (s->pending.n) {
    if (recs_append(&s->pending, r) != 0) fail(p, "out of memory queueing %s records", "sink");
    return;
  }
  cs_sink_status st = sink_write(p, s, r, &err);
  if (st == CS_SINK_OK) {
    on_written(p, s, r);
    return;
  }
  if (st == CS_SINK_ERROR) {
    cs_error(s->sink->label, "%s", err.msg);
    fail(p, "%s failed", s->sink->label);
    return;
  }
  if (recs_append(&s->pending, r) != 0) {
    fail(p, "out of memory queueing %s records", "sink");
    return;
  }
  if (st == CS_SINK_BUSY) {
    s->busy = 1;
    uv_timer_start(&s->timer, on_retry, CS_SINK_BUSY_RECHECK_MS, 0);
  } else {
    schedule_retry(s, err.msg[0] ? err.msg : "sink asked to retry");
  }
  update_pause(p);
}

static void on_retry(uv_timer_t *t) {
  sink_slot *s = t->data;
  cs_pipeline *p = s->p;
  cs_err err = {{0}};
  if (p->st == ST_DONE) return;
  cs_sink_status st;
  if (s->pending.n) {
    st = sink_write(p, s, &s->pending, &err);
    if (st == CS_SINK_OK) {
      if (!s->busy) cs_info(s->sink->label, "recovered: %zu queued records written", s->pending.n);
      s->busy = 0;
      on_written(p, s, &s->pending);
      recs_clear(&s->pending);
    }
  } else {
    st = s->sink->vt->flush(s->sink, &err);
    if (st == CS_SINK_OK) s->flushing = 2;
  }
  if (st == CS_SINK_ERROR) {
    cs_error(s->sink->label, "%s", err.msg);
    fail(p, "%s failed", s->sink->label);
    return;
  }
  if (st == CS_SINK_BUSY && s->pending.n) { /* still full: wait for cs_sink_ready */
    s->busy = 1;
    uv_timer_start(&s->timer, on_retry, CS_SINK_BUSY_RECHECK_MS, 0);
    return;
  }
  if (st == CS_SINK_RETRY || st == CS_SINK_BUSY) {
    if (s->pending.n && !err.msg[0]) cs_err_set(&err, "sink asked to retry");
    schedule_retry(s, st == CS_SINK_BUSY ? "" : err.msg);
    return;
  }
  s->backoff_ms = 0;
  update_pause(p);
  maybe_finish(p);
}

static void deliver(cs_pipeline *p) {
  if (!p->batch.n) return;
  for (size_t i = 0; i < p->nsinks && p->st != ST_DONE; i++) write_sink(&p->sinks[i], &p->batch);
  recs_clear(&p->batch);
}

static void stop_source(cs_pipeline *p) {
  if (p->src && !p->src_stopped) {
    p->src_stopped = 1;
    p->src->vt->stop(p->src);
  }
}

static void close_sinks(cs_pipeline *p) {
  for (size_t i = 0; i < p->nsinks; i++) {
    uv_timer_stop(&p->sinks[i].timer);
    if (!uv_is_closing((uv_handle_t *)&p->sinks[i].timer)) uv_close((uv_handle_t *)&p->sinks[i].timer, NULL);
    p->sinks[i].sink->vt->stop(p->sinks[i].sink);
  }
}

static void on_gap(void *ud, const char *product, int64_t from, int64_t to) {
  cs_pipeline *p = ud;
  p->stats.gaps++;
  p->stats.missing_trades += (uint64_t)(to - from + 1);
  cs_log_limited(&p->lim_gap, CS_LOG_WARN, p->label, "gap: %s trade ids %lld..%lld missing (%lld trades)", product,
                 (long long)from, (long long)to, (long long)(to - from + 1));
}

static void done(cs_pipeline *p) {
  if (p->st == ST_DONE) return;
  p->st = ST_DONE;
  p->stats.end_us = cs_time_mono_us();
  /* What is still pending is missing as far as this run knows. */
  cs_gaps_flush(p->gaps, on_gap, p);
  if (p->clock_started) {
    uv_timer_stop(&p->clock);
    uv_close((uv_handle_t *)&p->clock, NULL);
    p->clock_started = 0;
  }
  stop_source(p);
  close_sinks(p);
  cs_log_limiter_flush(&p->lim_invalid, CS_LOG_WARN, p->label, "invalid-line messages");
  cs_log_limiter_flush(&p->lim_late, CS_LOG_INFO, p->label, "late-trade messages");
  cs_log_limiter_flush(&p->lim_dup, CS_LOG_INFO, p->label, "duplicate-trade messages");
  cs_log_limiter_flush(&p->lim_gap, CS_LOG_WARN, p->label, "gap messages");
  if (p->on_done) p->on_done(p->done_ud, p);
}

static void fail(cs_pipeline *p, const char *fmt, const char *detail) {
  if (p->failure || p->st == ST_DONE) return;
  char msg[256];
  snprintf(msg, sizeof msg, fmt, detail);
  p->failure = strdup(msg);
  cs_error(p->label, "stopping: %s", msg);
  done(p);
}

/* While draining: once every sink has taken everything, flush them all
 * (an asynchronous sink's flush waits for its acknowledgements). */
static void maybe_finish(cs_pipeline *p) {
  if (p->st != ST_DRAINING) return;
  for (size_t i = 0; i < p->nsinks; i++)
    if (p->sinks[i].pending.n || p->sinks[i].flushing == 1) return;
  for (size_t i = 0; i < p->nsinks; i++) {
    sink_slot *s = &p->sinks[i];
    if (s->flushing == 2) continue;
    cs_err err = {{0}};
    cs_sink_status st = s->sink->vt->flush(s->sink, &err);
    if (st == CS_SINK_ERROR) {
      cs_error(s->sink->label, "%s", err.msg);
      fail(p, "%s failed", s->sink->label);
      return;
    }
    if (st == CS_SINK_RETRY) {
      s->flushing = 1;
      schedule_retry(s, err.msg);
      return;
    }
    s->flushing = 2;
  }
  done(p);
}

static void on_sink_ack(void *ud, cs_sink *sink, uint64_t n) {
  cs_pipeline *p = ud;
  p->stats.rows_acked += n;
  for (size_t i = 0; i < p->nsinks; i++) {
    sink_slot *s = &p->sinks[i];
    if (s->sink != sink) continue;
    s->acked += n;
    if (s->acked > s->taken) s->acked = s->taken;
    s->unacked_since_us = cs_time_mono_us();
    int64_t now = s->mark_n ? cs_time_wall_us() : 0;
    while (s->mark_n && s->marks[s->mark_head].seq <= s->acked) {
      cs_hist_add(&s->window_to_ack, now - s->marks[s->mark_head].window_end_us);
      s->mark_head = (s->mark_head + 1) % s->mark_cap;
      s->mark_n--;
    }
    /* A final flush waiting for acknowledgements: look again now rather
     * than after its backoff. */
    if (s->flushing == 1 && p->st == ST_DRAINING) uv_timer_start(&s->timer, on_retry, 0, 0);
  }
}

static void on_sink_fail(void *ud, cs_sink *sink, const char *why) {
  cs_pipeline *p = ud;
  cs_error(sink->label, "%s", why);
  fail(p, "%s failed", sink->label);
}

/* A sink that answered CS_SINK_BUSY can take records: write them now. */
static void on_sink_ready(void *ud, cs_sink *sink) {
  cs_pipeline *p = ud;
  for (size_t i = 0; i < p->nsinks; i++) {
    sink_slot *s = &p->sinks[i];
    if (s->sink == sink && s->busy && s->pending.n && p->st != ST_DONE) uv_timer_start(&s->timer, on_retry, 0, 0);
  }
}

/* The feed's clock for sinks (cs_sink_feed_clock). */
static int sink_feed_clock(void *ud, int64_t *now_us) {
  cs_pipeline *p = ud;
  if (!p->has_feed) return 0;
  *now_us = p->feed_us + (p->src && p->src->live ? cs_time_wall_us() - p->feed_wall_us : 0);
  return 1;
}

static void mark_durable(cs_pipeline *p, int64_t wm);

static void on_end(void *ud) {
  cs_pipeline *p = ud;
  if (p->st != ST_RUNNING) return;
  if (p->window) cs_window_finish(p->window);
  cs_gaps_flush(p->gaps, on_gap, p);
  deliver(p);
  if (p->src->external_clock && p->window) { /* every window is out: durable once acknowledged */
    int64_t wm;
    if (!cs_window_watermark(p->window, &wm) || wm < p->max_end) wm = p->max_end;
    mark_durable(p, wm);
  }
  if (p->st == ST_DONE) return;
  p->st = ST_DRAINING;
  stop_source(p);
  maybe_finish(p);
}

static void on_fail(void *ud, const char *why) { fail(ud, "%s", why); }

/* The line being processed, for messages: "line N", or where the source
 * says it is ("trades [2] offset 1234"). */
static const char *at(cs_pipeline *p) {
  if (!p->src->vt->where || p->src->vt->where(p->src, p->where, sizeof p->where) != 0)
    snprintf(p->where, sizeof p->where, "line %llu", (unsigned long long)p->lineno);
  return p->where;
}

static void process_trade(cs_pipeline *p, cs_trade *t) {
  int ext = p->src->external_clock;
  int64_t wend = 0;
  if (ext && p->window) {
    /* A restored durable watermark: the trade's window was emitted (and
     * acknowledged) before; taking it would open a partial window. */
    wend = cs_time_floor_div(t->time_us, p->wconf.size_us) * p->wconf.size_us + p->wconf.size_us;
    if (wend <= p->src->floor_us) {
      p->stats.late++;
      cs_log_limited(&p->lim_late, CS_LOG_INFO, p->label, "%s: late trade %.*s #%lld at %.*s dropped (durable)",
                     at(p), (int)t->product_len, t->product_id, (long long)t->trade_id, (int)t->time_len,
                     t->time_str);
      return;
    }
  }
  if (p->has_hooks) {
    /* Hooks see only trades that will count: late and duplicate trades
     * are dropped (and counted) before any user code runs. */
    cs_window_verdict v0 = p->window ? cs_window_check(p->window, t) : CS_WIN_ACCEPTED;
    if (v0 == CS_WIN_ACCEPTED || v0 == CS_WIN_UPDATED) {
      int keep = 1;
      if (p->hooks.filter) keep = p->hooks.filter(p->hooks.ud, t);
      if (keep == 1 && p->hooks.map) keep = p->hooks.map(p->hooks.ud, t);
      if (keep != 1) {
        if (keep < 0) {
          p->stats.hook_errors++;
          cs_log_limited(&p->lim_hook, CS_LOG_WARN, p->label, "%s: hook failed; trade %.*s #%lld dropped",
                         at(p), (int)t->product_len, t->product_id, (long long)t->trade_id);
        } else {
          p->stats.filtered++;
        }
        return;
      }
    }
  }
  if (!p->window) {
    /* No window: every valid trade goes to the sinks, as it came. */
    p->stats.trades++;
    if (p->want_frames && p->frame_carrier == SIZE_MAX) { /* the frame rides with its first trade */
      p->frame_carrier = p->batch.n;
      t->frame = p->frame;
      t->frame_len = (uint32_t)p->frame_len;
    }
    if (recs_add_trades(&p->batch, &t, 1) != 0) fail(p, "out of memory keeping %s", "trades");
    if (ext) p->src->result.seq = p->stats.trades;
    return;
  }
  cs_window_verdict verdict = cs_window_add(p->window, t);
  if (t->recv_us && verdict >= 0) {
    int64_t now = p->src->now_us ? p->src->now_us : cs_time_wall_us();
    cs_hist_add(&p->stats.frame_to_window, now - t->recv_us);
    if (verdict == CS_WIN_ACCEPTED || verdict == CS_WIN_UPDATED)
      cs_hist_add(&p->stats.exchange_to_window, now - t->time_us);
  }
  if (ext && verdict == CS_WIN_ACCEPTED) {
    cs_line_result *res = &p->src->result;
    if (t->time_us - p->wconf.lateness_us > res->wm_us) res->wm_us = t->time_us - p->wconf.lateness_us;
    if (wend > res->end_us) res->end_us = wend;
  } else if (ext && verdict == CS_WIN_UPDATED) {
    p->src->result.seq = p->stats.windows; /* re-emitted at once */
  }
  switch (verdict) {
    case CS_WIN_ACCEPTED: p->stats.trades++; break;
    case CS_WIN_UPDATED:
      p->stats.trades++;
      p->stats.late_updates++;
      break;
    case CS_WIN_LATE:
      p->stats.late++;
      cs_log_limited(&p->lim_late, CS_LOG_INFO, p->label, "%s: late trade %.*s #%lld at %.*s dropped",
                     at(p), (int)t->product_len, t->product_id, (long long)t->trade_id,
                     (int)t->time_len, t->time_str);
      break;
    case CS_WIN_DUPLICATE:
      p->stats.duplicates++;
      cs_log_limited(&p->lim_dup, CS_LOG_INFO, p->label, "%s: duplicate trade %.*s #%lld dropped",
                     at(p), (int)t->product_len, t->product_id, (long long)t->trade_id);
      break;
    case CS_WIN_NOMEM: fail(p, "out of memory in the %s", "window engine"); break;
  }
}

/* When a missing id revealed at event time t counts as a gap. */
static int64_t gap_deadline(const cs_pipeline *p, int64_t t) {
  if (!p->window) return t + CS_PIPELINE_GAP_SETTLE_US;
  return cs_time_floor_div(t, p->wconf.size_us) * p->wconf.size_us + p->wconf.size_us;
}

/* The clock gaps expire by: the watermark, or without a window the feed. */
static void expire_gaps(cs_pipeline *p) {
  int64_t clock;
  if (p->window) {
    if (!cs_window_watermark(p->window, &clock)) return;
  } else if (p->src->external_clock) { /* the source's watermark: the slowest partition */
    if (p->ext_wm == INT64_MIN) return;
    clock = p->ext_wm;
  } else {
    if (!p->has_feed) return;
    clock = p->feed_us;
  }
  cs_gaps_expire(p->gaps, clock, on_gap, p);
}

static void feed_clock(cs_pipeline *p, int64_t t) {
  if (!p->has_feed || t > p->feed_us) {
    p->has_feed = 1;
    p->feed_us = t;
    /* Only a live feed's clock runs on with the wall clock: replays skip
     * the clock read (it would be one per trade). */
    p->feed_wall_us = p->src && p->src->live ? cs_time_wall_us() : 0;
  }
}

/* Live sources: event time goes on with the wall clock since the feed's
 * last message, so quiet markets (or a feed that is down) still close
 * windows, lateness + grace after their end. */
static void on_clock(uv_timer_t *t) {
  cs_pipeline *p = t->data;
  if (p->st != ST_RUNNING || !p->has_feed) return;
  cs_pipeline_tick(p, p->feed_us + (cs_time_wall_us() - p->feed_wall_us));
}

void cs_pipeline_tick(cs_pipeline *p, int64_t now) {
  if (p->st != ST_RUNNING) return;
  if (p->window) cs_window_advance(p->window, now - p->wconf.lateness_us - CS_PIPELINE_GRACE_US);
  if (p->window)
    expire_gaps(p);
  else
    cs_gaps_expire(p->gaps, now, on_gap, p);
  deliver(p);
}

static void on_line(void *ud, const char *line, size_t len, int padded, uint64_t lineno, const char *reject) {
  cs_pipeline *p = ud;
  if (p->st != ST_RUNNING) return;
  p->stats.lines++;
  p->lineno = lineno;
  if (p->src->external_clock) p->src->result = (cs_line_result){INT64_MIN, INT64_MIN, 0, CS_LINE_INVALID};
  if (reject) {
    p->stats.invalid++;
    cs_log_limited(&p->lim_invalid, CS_LOG_WARN, p->label, "%s: invalid: %s", at(p), reject);
    return;
  }
  if (len == 0) { /* an empty line carries nothing */
    p->src->result.kind = CS_LINE_OTHER;
    return;
  }
  const cs_trade *trades;
  size_t n;
  const char *why;
  cs_parse_result r = cs_parse_line(p->parser, line, len, padded != 0, &trades, &n, &why);
  if (r == CS_PARSE_INVALID) {
    /* A batch whose trades were all bad counts each of them. */
    uint32_t bad = cs_parse_info(p->parser)->invalid_trades;
    p->stats.invalid += bad ? bad : 1;
    cs_log_limited(&p->lim_invalid, CS_LOG_WARN, p->label, "%s: invalid: %s", at(p), why);
    return;
  }
  const cs_msg_info *info = cs_parse_info(p->parser);
  int64_t wall = p->src->live ? cs_time_wall_us() : 0;
  int64_t skew_limit = wall + p->src->max_skew_us;
  if (info->has_time && r == CS_PARSE_OTHER && (!p->src->live || info->time_us <= skew_limit))
    feed_clock(p, info->time_us);
  if (info->kind == CS_MSG_HEARTBEAT && info->last_trade_id >= 0 && info->product_id && info->product_id[0] &&
      info->has_time)
    cs_gaps_heartbeat(p->gaps, info->product_id, strlen(info->product_id), info->last_trade_id,
                      gap_deadline(p, info->time_us));
  if (info->kind != CS_MSG_OTHER && info->kind != CS_MSG_TRADES && p->src->vt->on_message)
    p->src->vt->on_message(p->src, info);
  if (r == CS_PARSE_OTHER) {
    p->stats.ignored++;
    p->src->result.kind = CS_LINE_OTHER;
    if (p->src->external_clock && info->has_time && strcmp(cs_parse_last_type(p->parser), "clock") == 0) {
      p->src->result.kind = CS_LINE_CLOCK;
      /* A clock record (cs.kafka sink): the feed's clock, as heartbeats on a live feed. */
      int64_t wm = info->time_us - p->wconf.lateness_us - CS_PIPELINE_GRACE_US;
      if (wm > p->src->result.wm_us) p->src->result.wm_us = wm;
    }
    if (p->window) expire_gaps(p);
    deliver(p);
    return;
  }
  p->src->result.kind = CS_LINE_TRADES;
  if (info->invalid_trades) {
    p->stats.invalid += info->invalid_trades;
    cs_log_limited(&p->lim_invalid, CS_LOG_WARN, p->label, "%s: %u invalid trades in the batch: %s",
                   at(p), info->invalid_trades, info->invalid_reason);
  }
  p->frame = line;
  p->frame_len = len;
  p->frame_carrier = SIZE_MAX;
  for (size_t i = 0; i < n && p->st == ST_RUNNING; i++) {
    cs_trade t = trades[i];
    t.recv_us = p->src->recv_us;
    if (p->src->live && p->src->max_skew_us > 0 && t.time_us > skew_limit) {
      /* A clock far ahead must not drag the watermark forward. */
      p->stats.invalid++;
      p->stats.skewed++;
      cs_log_limited(&p->lim_skew, CS_LOG_WARN, p->label,
                     "%s: invalid: trade %.*s #%lld at %.*s is %.1f s ahead of the wall clock",
                     at(p), (int)t.product_len, t.product_id, (long long)t.trade_id,
                     (int)t.time_len, t.time_str, (double)(t.time_us - wall) / 1e6);
      continue;
    }
    feed_clock(p, t.time_us);
    int64_t deadline = gap_deadline(p, t.time_us);
    int gr = cs_gaps_trade_at(p->gaps, t.product_id, t.product_len, t.trade_id, t.time_us, deadline);
    if (gr < 0) fail(p, "out of memory in the %s", "gap tracker");
    if (gr == 2)
      cs_log_limited(&p->lim_gap, CS_LOG_WARN, p->label,
                     "line %llu: trade %.*s #%lld is more than %u ids beyond the newest: left out of gap tracking",
                     (unsigned long long)lineno, (int)t.product_len, t.product_id, (long long)t.trade_id,
                     CS_GAPS_MAX_JUMP);
    process_trade(p, &t);
  }
  if (p->frame_carrier != SIZE_MAX && p->frame_carrier < p->batch.n && p->batch.trades)
    p->batch.trades[p->frame_carrier]->frame_trades = (uint32_t)(p->batch.n - p->frame_carrier);
  expire_gaps(p);
  deliver(p);
}

/* ---- sources with their own event clock (cs_source.external_clock) */

/* Records handed to the sinks so far, in order: rows, or trades. */
static uint64_t records_out(const cs_pipeline *p) { return p->window ? p->stats.windows : p->stats.trades; }

/* The watermark reached wm once the records handed out so far are
 * acknowledged by every sink. */
static void mark_durable(cs_pipeline *p, int64_t wm) {
  uint64_t seq = records_out(p);
  if (p->dmark_n) {
    struct dmark *last = &p->dmarks[(p->dmark_head + p->dmark_n - 1) % p->dmark_cap];
    if (last->seq == seq) {
      if (wm > last->wm) last->wm = wm;
      return;
    }
  }
  if (p->dmark_n == p->dmark_cap) {
    size_t nc = p->dmark_cap ? p->dmark_cap * 2 : 64;
    struct dmark *nm = malloc(nc * sizeof *nm);
    if (!nm) {
      fail(p, "out of memory tracking %s", "durable windows");
      return;
    }
    for (size_t k = 0; k < p->dmark_n; k++) nm[k] = p->dmarks[(p->dmark_head + k) % p->dmark_cap];
    free(p->dmarks);
    p->dmarks = nm;
    p->dmark_cap = nc;
    p->dmark_head = 0;
  }
  p->dmarks[(p->dmark_head + p->dmark_n++) % p->dmark_cap] = (struct dmark){wm, seq};
}

static void src_advance(void *ud, int64_t wm) {
  cs_pipeline *p = ud;
  if (p->st != ST_RUNNING) return;
  if (p->window) {
    cs_window_advance(p->window, wm);
  } else if (wm > p->ext_wm) {
    p->ext_wm = wm;
  }
  expire_gaps(p);
  deliver(p);
  mark_durable(p, wm);
}

static void src_durable(void *ud, int64_t *wm, uint64_t *acked) {
  cs_pipeline *p = ud;
  uint64_t all = records_out(p);
  for (size_t i = 0; i < p->nsinks; i++)
    if (p->sinks[i].acked < all) all = p->sinks[i].acked;
  while (p->dmark_n && p->dmarks[p->dmark_head].seq <= all) {
    p->durable_wm = p->dmarks[p->dmark_head].wm;
    p->dmark_head = (p->dmark_head + 1) % p->dmark_cap;
    p->dmark_n--;
  }
  *wm = p->durable_wm;
  *acked = all;
}

/* A fresh window engine whose watermark only the source moves. */
static int external_window(cs_pipeline *p, cs_err *err) {
  cs_window_destroy(p->window);
  p->wconf.external_wm = 1;
  p->window = cs_window_create(&p->wconf, on_row, p, err);
  return p->window ? 0 : -1;
}

static void src_reset(void *ud) {
  cs_pipeline *p = ud;
  if (p->st != ST_RUNNING) return;
  size_t open = p->window ? cs_window_open_count(p->window) : 0;
  cs_err err;
  if (p->window && external_window(p, &err) != 0) {
    fail(p, "%s", err.msg);
    return;
  }
  cs_gaps *g = cs_gaps_create();
  if (!g) {
    fail(p, "out of memory in the %s", "gap tracker");
    return;
  }
  cs_gaps_destroy(p->gaps);
  p->gaps = g;
  p->dmark_n = 0;
  p->durable_wm = p->ext_wm = INT64_MIN;
  if (open) cs_info(p->label, "%zu open windows dropped (partitions revoked); their trades will be read again", open);
}

int cs_pipeline_set_window(cs_pipeline *p, const cs_window_conf *conf, cs_err *err) {
  cs_window_destroy(p->window);
  p->wconf = *conf;
  p->window = cs_window_create(&p->wconf, on_row, p, err);
  return p->window ? 0 : -1;
}

int cs_pipeline_start(cs_pipeline *p, uv_loop_t *loop, cs_pipeline_done_fn on_done, void *ud, cs_err *err) {
  if (!p->src) return cs_err_set(err, "%s: no source", p->label);
  if (!p->nsinks) return cs_err_set(err, "%s: no sink", p->label);
  for (size_t i = 0; i < p->nsinks; i++)
    if (!p->window && !p->sinks[i].sink->vt->write_trades)
      return cs_err_set(err, "%s: %s takes window rows only, and this pipeline has no window", p->label,
                        p->sinks[i].sink->label);
  for (size_t i = 0; i < p->nsinks; i++) {
    const cs_sink *k = p->sinks[i].sink;
    const char *no = NULL;
    if (!k->frames) continue;
    if (p->window)
      no = "a pipeline with a window (the sink would get window rows)";
    else if (p->has_hooks)
      no = "Lua filter/map hooks (a forwarded frame cannot show what they dropped or changed)";
    else if (!p->src->vt->frames)
      no = "this source: its messages are not exchange frames as received";
    if (no)
      return cs_err_set(err, "%s: %s forwards exchange frames (%s), which cannot work with %s", p->label, k->label,
                        k->frames, no);
    p->want_frames = 1;
  }
  if (p->src->external_clock && p->window && external_window(p, err) != 0) return -1;
  p->on_done = on_done;
  p->done_ud = ud;
  p->stats.start_us = cs_time_mono_us();
  for (size_t i = 0; i < p->nsinks; i++) {
    sink_slot *s = &p->sinks[i];
    s->p = p;
    s->sink->ud = p;
    s->sink->on_ack = on_sink_ack;
    s->sink->on_fail = on_sink_fail;
    s->sink->on_ready = on_sink_ready;
    s->sink->feed_clock = sink_feed_clock;
    s->sink->trades = p->window == NULL;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    if (s->sink->vt->start(s->sink, loop, err) != 0) {
      cs_err_prefix(err, "%s", s->sink->label);
      for (size_t j = 0; j <= i; j++) uv_close((uv_handle_t *)&p->sinks[j].timer, NULL);
      for (size_t j = 0; j < i; j++) p->sinks[j].sink->vt->stop(p->sinks[j].sink);
      p->st = ST_DONE;
      return -1;
    }
  }
  if (p->src->external_clock) {
    p->durable_wm = p->max_end = p->ext_wm = INT64_MIN;
    p->src->floor_us = INT64_MIN;
    p->src->advance = src_advance;
    p->src->reset = src_reset;
    p->src->durable = src_durable;
  }
  p->src->ud = p;
  p->src->on_line = on_line;
  p->src->on_end = on_end;
  p->src->on_fail = on_fail;
  p->st = ST_RUNNING;
  if (p->src->live) {
    uv_timer_init(loop, &p->clock);
    p->clock.data = p;
    uv_timer_start(&p->clock, on_clock, 250, 250);
    p->clock_started = 1;
  }
  if (p->src->vt->start(p->src, loop, err) != 0) {
    cs_err_prefix(err, "%s", p->src->label);
    p->st = ST_DONE;
    p->src_stopped = 1;
    if (p->clock_started) {
      uv_close((uv_handle_t *)&p->clock, NULL);
      p->clock_started = 0;
    }
    close_sinks(p);
    return -1;
  }
  return 0;
}

void cs_pipeline_interrupt(cs_pipeline *p) {
  if (p->st == ST_DONE) return;
  if (p->st == ST_DRAINING && p->interrupted) {
    /* Second signal: give up on rows a sink has not taken. */
    for (size_t i = 0; i < p->nsinks; i++) {
      sink_slot *s = &p->sinks[i];
      if (s->pending.n)
        cs_error(s->sink->label, "interrupted twice: %zu records not written", s->pending.n);
    }
    fail(p, "interrupted twice with %s", "rows still waiting for a sink");
    return;
  }
  p->interrupted = 1;
  if (p->st == ST_RUNNING) {
    p->stats.open_windows = p->window ? cs_window_open_count(p->window) : 0;
    if (p->stats.open_windows)
      cs_info(p->label, "interrupted: %llu open windows not emitted (incomplete)",
              (unsigned long long)p->stats.open_windows);
    stop_source(p);
    p->st = ST_DRAINING;
  }
  maybe_finish(p);
}

void cs_pipeline_print_summary(const cs_pipeline *p, FILE *out) {
  const cs_pipeline_stats *s = &p->stats;
  int64_t end = s->end_us ? s->end_us : cs_time_mono_us();
  double el = (double)(end - s->start_us) / 1e6;
  char lat[96] = "";
  if (s->frame_to_window.count)
    snprintf(lat, sizeof lat, " latency_p50_us=%lld latency_p99_us=%lld",
             (long long)cs_hist_quantile(&s->frame_to_window, 0.5), (long long)cs_hist_quantile(&s->frame_to_window, 0.99));
  fprintf(out,
          "summary pipeline=%s lines=%llu trades=%llu windows=%llu late=%llu duplicates=%llu invalid=%llu "
          "ignored=%llu open_windows=%llu late_updates=%llu gaps=%llu missing_trades=%llu filtered=%llu hook_errors=%llu rows_acked=%llu sink_retries=%llu "
          "elapsed_s=%.3f trades_per_s=%.0f%s%s\n",
          p->name, (unsigned long long)s->lines, (unsigned long long)s->trades, (unsigned long long)s->windows,
          (unsigned long long)s->late, (unsigned long long)s->duplicates, (unsigned long long)s->invalid,
          (unsigned long long)s->ignored, (unsigned long long)s->open_windows, (unsigned long long)s->late_updates,
          (unsigned long long)s->gaps, (unsigned long long)s->missing_trades,
          (unsigned long long)s->filtered,
          (unsigned long long)s->hook_errors, (unsigned long long)s->rows_acked,
          (unsigned long long)s->sink_retries, el, el > 0 ? (double)s->trades / el : 0.0, lat,
          p->failure ? " status=failed" : (p->interrupted ? " status=interrupted" : " status=ok"));
}

/* ------------------------------------------------ operations (metrics) */

void cs_pipeline_set_ack_timeout(cs_pipeline *p, int64_t ack_timeout_us) { p->ack_timeout_us = ack_timeout_us; }

/* "jsonl", or "jsonl#2" when the pipeline has several sinks. */
static void sink_name(const cs_pipeline *p, const sink_slot *s, char *buf, size_t size) {
  const char *hash = strrchr(s->sink->label, '#');
  snprintf(buf, size, "%s%s", s->sink->vt->name, p->nsinks > 1 && hash ? hash : "");
}

/* A sink is acknowledging unless records wait for a retry, its final
 * flush is being retried, or (asynchronous) records have waited for an
 * acknowledgement longer than ack_timeout. Returns 1 when it is. */
static int sink_ok(const cs_pipeline *p, const sink_slot *s, char *why, size_t size) {
  if (s->busy && s->pending.n) {
    snprintf(why, size, "full (%zu records waiting for room in the sink)", s->pending.n);
    return 0;
  }
  if (s->pending.n || s->flushing == 1) {
    snprintf(why, size, "retrying (%zu records waiting): %s", s->pending.n,
             s->last_error[0] ? s->last_error : "the sink asked to retry");
    return 0;
  }
  uint64_t unacked = s->taken - s->acked;
  if (unacked && p->ack_timeout_us > 0) {
    int64_t waited = cs_time_mono_us() - s->unacked_since_us;
    if (waited > p->ack_timeout_us) {
      snprintf(why, size, "%llu records not acknowledged for %.0f s", (unsigned long long)unacked,
               (double)waited / 1e6);
      return 0;
    }
  }
  snprintf(why, size, "acknowledging");
  return 1;
}

void cs_pipeline_get_status(const cs_pipeline *p, cs_pipeline_status *st) {
  memset(st, 0, sizeof *st);
  st->running = p->st == ST_RUNNING;
  if (p->src) {
    st->live = p->src->live;
    st->connected = p->src->connected;
    st->reconnects = p->src->reconnects;
    if (p->src->vt->progress && p->st != ST_NEW)
      st->has_progress = p->src->vt->progress(p->src, &st->done_bytes, &st->total_bytes) == 0;
  }
  if (p->window) {
    st->has_watermark = cs_window_watermark(p->window, &st->watermark_us);
    st->open_windows = cs_window_open_count(p->window);
  }
  st->last_trade_us = INT64_MIN;
  for (size_t i = 0; i < cs_gaps_product_count(p->gaps); i++) {
    cs_gaps_product pr;
    cs_gaps_product_info(p->gaps, i, &pr);
    if (pr.last_time_us > st->last_trade_us) st->last_trade_us = pr.last_time_us;
  }
  for (size_t i = 0; i < p->nsinks; i++) st->queued += p->sinks[i].pending.n;
}

void cs_pipeline_collect(void *ud, cs_metrics_page *pg) {
  const cs_pipeline *p = ud;
  const cs_pipeline_stats *s = &p->stats;
  char lb[512], lb2[512];
  cs_metrics_labels(lb, sizeof lb, "pipeline", p->name, NULL);
#define C(name, help, v) cs_metrics_counter(pg, "cstream_" name, help, lb, (double)(v))
#define G(name, help, v) cs_metrics_gauge(pg, "cstream_" name, help, lb, (double)(v))
  C("messages_total", "Messages (input lines, feed frames) received", s->lines);
  C("ignored_messages_total", "Well-formed messages that are not trades (subscriptions, heartbeats, tickers, ...)",
    s->ignored);
  C("invalid_total", "Invalid messages and trades (bad JSON, bad fields, too long, ahead of the wall clock)",
    s->invalid);
  C("skewed_trades_total", "Trades stamped further ahead of the wall clock than max_skew (also counted invalid)",
    s->skewed);
  C("trades_total", "Trades accepted into a window (or handed to the sinks, without a window)", s->trades);
  C("late_trades_total", "Trades dropped because their window had closed", s->late);
  C("duplicate_trades_total", "Trades dropped because their (product, trade id) was already seen", s->duplicates);
  C("late_updates_total", "Late trades taken into an emitted window, which was emitted again (on_late = update)",
    s->late_updates);
  C("filtered_trades_total", "Trades a Lua filter or map dropped", s->filtered);
  C("hook_errors_total", "Lua hooks that raised an error", s->hook_errors);
  C("windows_emitted_total", "Window rows emitted", s->windows);
  G("pipeline_running", "1 while the pipeline takes input, 0 once it has ended (or failed)", p->st == ST_RUNNING);
  G("pipeline_failed", "1 when the pipeline stopped on a failure", p->failure != NULL);
  G("pipeline_start_time_seconds", "When the pipeline started, seconds since the Unix epoch",
    p->stats.start_us ? (double)(cs_time_wall_us() - (cs_time_mono_us() - p->stats.start_us)) / 1e6 : 0);
  G("missing_trades_pending", "Trade ids missing but not yet declared a gap (their window is still open)",
    cs_gaps_pending(p->gaps));
  int64_t now = cs_time_wall_us();
  if (p->window) {
    G("open_windows", "Windows open (holding trades, not yet emitted)", cs_window_open_count(p->window));
    int64_t wm;
    if (cs_window_watermark(p->window, &wm)) {
      G("watermark_timestamp_seconds", "The watermark (event time up to which windows are complete)",
        (double)wm / 1e6);
      G("watermark_lag_seconds", "Wall clock minus the watermark (large on replays of old captures)",
        (double)(now - wm) / 1e6);
    }
  }
  if (p->window && p->src && p->src->live) {
    cs_metrics_histogram(pg, "cstream_frame_to_window_seconds",
                         "Live sources: from a frame's arrival to its trade being in its window", lb,
                         &s->frame_to_window);
    cs_metrics_histogram(pg, "cstream_exchange_to_window_seconds",
                         "Live sources: from a trade's exchange time to the trade being in its window", lb,
                         &s->exchange_to_window);
  }
  for (size_t i = 0; i < cs_gaps_product_count(p->gaps); i++) {
    cs_gaps_product pr;
    cs_gaps_product_info(p->gaps, i, &pr);
    cs_metrics_labels(lb2, sizeof lb2, "pipeline", p->name, "product", pr.name, NULL);
    cs_metrics_counter(pg, "cstream_product_trades_total",
                       "Valid trades received per product (before late and duplicate checks)", lb2, (double)pr.trades);
    cs_metrics_counter(pg, "cstream_gaps_total", "Trade-id gaps declared per product", lb2, (double)pr.gaps);
    cs_metrics_counter(pg, "cstream_missing_trades_total", "Trade ids missing in declared gaps, per product", lb2,
                       (double)pr.missing);
    if (pr.last_time_us != INT64_MIN) {
      cs_metrics_gauge(pg, "cstream_last_trade_timestamp_seconds", "Exchange time of the product's newest trade", lb2,
                       (double)pr.last_time_us / 1e6);
      cs_metrics_gauge(pg, "cstream_last_trade_age_seconds",
                       "Wall clock minus the exchange time of the product's newest trade (staleness)", lb2,
                       (double)(now - pr.last_time_us) / 1e6);
    }
  }
  if (p->src) {
    cs_metrics_labels(lb2, sizeof lb2, "pipeline", p->name, "source", p->src->vt->name, NULL);
    uint64_t done, total;
    if (p->src->vt->progress && p->st != ST_NEW && p->src->vt->progress(p->src, &done, &total) == 0) {
      cs_metrics_gauge(pg, "cstream_source_read_bytes", "Finite sources: bytes of the input read so far", lb2,
                       (double)done);
      if (total)
        cs_metrics_gauge(pg, "cstream_source_size_bytes", "Finite sources: size of the input in bytes", lb2,
                         (double)total);
    }
    if (p->src->live) {
      cs_metrics_gauge(pg, "cstream_source_connected", "Live sources: 1 while connected and subscribed", lb2,
                       p->src->connected);
      cs_metrics_counter(pg, "cstream_source_reconnects_total",
                         "Live sources: connections lost or attempts failed, each followed by a reconnection", lb2,
                         (double)p->src->reconnects);
    }
    cs_metrics_gauge(pg, "cstream_source_paused", "1 while the source is held back (a sink asked to retry)", lb2,
                     p->src_paused);
    if (p->src->vt->metrics) p->src->vt->metrics(p->src, pg, lb2);
  }
  for (size_t i = 0; i < p->nsinks; i++) {
    const sink_slot *sl = &p->sinks[i];
    char name[96], why[256];
    sink_name(p, sl, name, sizeof name);
    cs_metrics_labels(lb2, sizeof lb2, "pipeline", p->name, "sink", name, NULL);
    cs_metrics_counter(pg, "cstream_sink_records_total", "Records the sink took (write answered OK)", lb2,
                       (double)sl->taken);
    cs_metrics_counter(pg, "cstream_sink_acked_records_total", "Records the sink acknowledged (durable)", lb2,
                       (double)sl->acked);
    cs_metrics_counter(pg, "cstream_sink_retries_total", "Writes or flushes the sink asked to retry", lb2,
                       (double)sl->retries);
    cs_metrics_gauge(pg, "cstream_sink_queued_records", "Records waiting in the pipeline for the sink to take them",
                     lb2, (double)sl->pending.n);
    cs_metrics_gauge(pg, "cstream_sink_unacked_records", "Records taken by the sink and not yet acknowledged", lb2,
                     (double)(sl->taken - sl->acked));
    cs_metrics_gauge(pg, "cstream_sink_acknowledging", "1 unless the sink is retrying or its acknowledgements are late",
                     lb2, sink_ok(p, sl, why, sizeof why));
    if (p->window && p->src && p->src->live)
      cs_metrics_histogram(pg, "cstream_window_to_ack_seconds",
                           "Live sources: from a window's end to its row being acknowledged by the sink", lb2,
                           &sl->window_to_ack);
    if (sl->sink->vt->metrics) sl->sink->vt->metrics(sl->sink, pg, lb2);
  }
#undef C
#undef G
}

void cs_pipeline_health(void *ud, cs_metrics_health *hh) {
  const cs_pipeline *p = ud;
  if (p->failure) cs_metrics_check(hh, p->name, "pipeline", 0, "failed: %s", p->failure);
  if (p->src) {
    const char *comp = p->src->label;
    if (!p->src->live)
      cs_metrics_check(hh, p->name, comp, 1, "%s", p->st == ST_RUNNING ? "reading" : "ended");
    else if (p->st != ST_RUNNING)
      cs_metrics_check(hh, p->name, comp, 1, "stopped");
    else if (p->src->connected)
      cs_metrics_check(hh, p->name, comp, 1, "connected");
    else
      cs_metrics_check(hh, p->name, comp, 0, "not connected (%llu reconnects so far)",
                       (unsigned long long)p->src->reconnects);
  }
  for (size_t i = 0; i < p->nsinks; i++) {
    char why[256];
    int ok = sink_ok(p, &p->sinks[i], why, sizeof why);
    cs_metrics_check(hh, p->name, p->sinks[i].sink->label, ok, "%s", why);
  }
}
