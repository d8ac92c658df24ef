#include "cs_pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "cs_gaps.h"
#include "cs_log.h"
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
  struct cs_pipeline *p;
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
  cs_gaps *gaps;
  /* The feed's clock: the newest message time seen, and when (wall). */
  int has_feed;
  int64_t feed_us, feed_wall_us, max_trade_us;
  uv_timer_t clock;
  int clock_started;
  cs_log_limiter lim_gap, lim_skew;
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
  return p;
}

void cs_pipeline_destroy(cs_pipeline *p) {
  if (!p) return;
  cs_source_destroy(p->src);
  for (size_t i = 0; i < p->nsinks; i++) {
    recs_free(&p->sinks[i].pending);
    cs_sink_destroy(p->sinks[i].sink);
  }
  free(p->sinks);
  recs_free(&p->batch);
  free(p->scratch);
  cs_window_destroy(p->window);
  cs_parser_destroy(p->parser);
  cs_gaps_destroy(p->gaps);
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

static void on_written(cs_pipeline *p, sink_slot *s, size_t n) {
  if (!s->sink->vt->async_ack) p->stats.rows_acked += n;
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
    on_written(p, s, r->n);
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
  schedule_retry(s, err.msg[0] ? err.msg : "sink asked to retry");
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
      cs_info(s->sink->label, "recovered: %zu queued records written", s->pending.n);
      on_written(p, s, s->pending.n);
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
  if (st == CS_SINK_RETRY) {
    if (s->pending.n && !err.msg[0]) cs_err_set(&err, "sink asked to retry");
    schedule_retry(s, err.msg);
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
}

static void on_sink_fail(void *ud, cs_sink *sink, const char *why) {
  cs_pipeline *p = ud;
  cs_error(sink->label, "%s", why);
  fail(p, "%s failed", sink->label);
}

static void on_end(void *ud) {
  cs_pipeline *p = ud;
  if (p->st != ST_RUNNING) return;
  if (p->window) cs_window_finish(p->window);
  cs_gaps_flush(p->gaps, on_gap, p);
  deliver(p);
  if (p->st == ST_DONE) return;
  p->st = ST_DRAINING;
  stop_source(p);
  maybe_finish(p);
}

static void on_fail(void *ud, const char *why) { fail(ud, "%s", why); }

static void process_trade(cs_pipeline *p, cs_trade *t) {
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
          cs_log_limited(&p->lim_hook, CS_LOG_WARN, p->label, "line %llu: hook failed; trade %.*s #%lld dropped",
                         (unsigned long long)p->lineno, (int)t->product_len, t->product_id, (long long)t->trade_id);
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
    if (recs_add_trades(&p->batch, &t, 1) != 0) fail(p, "out of memory keeping %s", "trades");
    return;
  }
  cs_window_verdict verdict = cs_window_add(p->window, t);
  if (t->recv_us && verdict >= 0) cs_hist_add(&p->stats.frame_to_window, cs_time_wall_us() - t->recv_us);
  switch (verdict) {
    case CS_WIN_ACCEPTED: p->stats.trades++; break;
    case CS_WIN_UPDATED:
      p->stats.trades++;
      p->stats.late_updates++;
      break;
    case CS_WIN_LATE:
      p->stats.late++;
      cs_log_limited(&p->lim_late, CS_LOG_INFO, p->label, "line %llu: late trade %.*s #%lld at %.*s dropped",
                     (unsigned long long)p->lineno, (int)t->product_len, t->product_id, (long long)t->trade_id,
                     (int)t->time_len, t->time_str);
      break;
    case CS_WIN_DUPLICATE:
      p->stats.duplicates++;
      cs_log_limited(&p->lim_dup, CS_LOG_INFO, p->label, "line %llu: duplicate trade %.*s #%lld dropped",
                     (unsigned long long)p->lineno, (int)t->product_len, t->product_id, (long long)t->trade_id);
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
    p->feed_wall_us = cs_time_wall_us();
  }
}

/* Live sources: event time goes on with the wall clock since the feed's
 * last message, so quiet markets (or a feed that is down) still close
 * windows, lateness + grace after their end. */
static void on_clock(uv_timer_t *t) {
  cs_pipeline *p = t->data;
  if (p->st != ST_RUNNING || !p->has_feed) return;
  int64_t now = p->feed_us + (cs_time_wall_us() - p->feed_wall_us);
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
  if (reject) {
    p->stats.invalid++;
    cs_log_limited(&p->lim_invalid, CS_LOG_WARN, p->label, "line %llu: invalid: %s", (unsigned long long)lineno, reject);
    return;
  }
  if (len == 0) return; /* an empty line carries nothing */
  const cs_trade *trades;
  size_t n;
  const char *why;
  cs_parse_result r = cs_parse_line(p->parser, line, len, padded != 0, &trades, &n, &why);
  if (r == CS_PARSE_INVALID) {
    /* A batch whose trades were all bad counts each of them. */
    uint32_t bad = cs_parse_info(p->parser)->invalid_trades;
    p->stats.invalid += bad ? bad : 1;
    cs_log_limited(&p->lim_invalid, CS_LOG_WARN, p->label, "line %llu: invalid: %s", (unsigned long long)lineno, why);
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
    if (p->window) expire_gaps(p);
    deliver(p);
    return;
  }
  if (info->invalid_trades) {
    p->stats.invalid += info->invalid_trades;
    cs_log_limited(&p->lim_invalid, CS_LOG_WARN, p->label, "line %llu: %u invalid trades in the batch: %s",
                   (unsigned long long)lineno, info->invalid_trades, info->invalid_reason);
  }
  for (size_t i = 0; i < n && p->st == ST_RUNNING; i++) {
    cs_trade t = trades[i];
    t.recv_us = p->src->recv_us;
    if (p->src->live && p->src->max_skew_us > 0 && t.time_us > skew_limit) {
      /* A clock far ahead must not drag the watermark forward. */
      p->stats.invalid++;
      p->stats.skewed++;
      cs_log_limited(&p->lim_skew, CS_LOG_WARN, p->label,
                     "line %llu: invalid: trade %.*s #%lld at %.*s is %.1f s ahead of the wall clock",
                     (unsigned long long)lineno, (int)t.product_len, t.product_id, (long long)t.trade_id,
                     (int)t.time_len, t.time_str, (double)(t.time_us - wall) / 1e6);
      continue;
    }
    feed_clock(p, t.time_us);
    if (cs_gaps_trade(p->gaps, t.product_id, t.product_len, t.trade_id, gap_deadline(p, t.time_us)) != 0)
      fail(p, "out of memory in the %s", "gap tracker");
    process_trade(p, &t);
  }
  expire_gaps(p);
  deliver(p);
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
  p->on_done = on_done;
  p->done_ud = ud;
  p->stats.start_us = cs_time_mono_us();
  for (size_t i = 0; i < p->nsinks; i++) {
    sink_slot *s = &p->sinks[i];
    s->p = p;
    s->sink->ud = p;
    s->sink->on_ack = on_sink_ack;
    s->sink->on_fail = on_sink_fail;
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
