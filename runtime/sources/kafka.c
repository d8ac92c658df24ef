/* cs.kafka (source): consumes a topic in a consumer group — any number of
 * partitions — and hands each message value to the pipeline as one line:
 * cstream's trade records, raw Coinbase frames (told apart by shape) and
 * the clock records the Kafka sink writes. docs/kafka.md has the design.
 *
 * Event time: each partition is read in offset order and has its own
 * watermark — its newest accepted trade's time minus lateness, or its
 * newest clock record's time minus lateness and 1 s of grace — and the
 * pipeline's watermark is the minimum over the assigned partitions
 * (cs_source.external_clock); it never moves back within an assignment.
 * A partition counts as idle only once it has been at the end of its log
 * for `partition_idle` (and the source is not paused by back-pressure) —
 * never because it is merely lagging; idle partitions are left out of the
 * minimum. When every partition has been at the end of its log for `idle`,
 * event time goes on with the wall clock, as on a live feed.
 *
 * At least once: offsets are never stored automatically. Per partition the
 * source keeps, in offset order, which window end (or which acknowledged
 * record count) each run of messages waits for; a partition's committable
 * offset is the first message not yet durable — every window holding its
 * trades emitted and acknowledged by every sink (the pipeline's durable
 * watermark, cs_source.durable). Offsets are committed every
 * `commit_interval`, on a revoke and at the end, with the durable watermark
 * in the commit metadata ({"cstream":1,"durable_us":N}); a partition
 * resumed from its committed offset gets it back as its floor: trades of
 * windows ending at or before it are late (their windows were emitted
 * complete before). A rebalance (eager) drops every open window; the
 * partitions' trades are read again from the committed offsets.
 *
 * Lost data is reported, never skipped: auto.offset.reset = error turns an
 * offset the broker no longer has (trimmed, deleted by retention) into an
 * error that stops the pipeline with topic, partition and offset.
 * `start` other than "committed" ignores the committed offsets: earliest,
 * latest, or a time (produce time: the message timestamp), looked up with
 * offsetsForTimes and, where the broker cannot answer (the embedded one
 * answers -1), found by reading from the start and skipping older
 * messages.
 *
 * Back-pressure: pause() stops delivery at once and pauses every assigned
 * partition (rd_kafka_pause_partitions); resume() resumes them and goes on
 * from the next message. */
#include <stdlib.h>
#include <string.h>

#include "cs_kafka.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_plugin.h"
#include "cs_time.h"

#define BUDGET 8192 /* messages per loop turn */
#define BATCH 512   /* messages taken from librdkafka's queue at once */
#define TICK_MS 250

enum { START_COMMITTED, START_EARLIEST, START_LATEST, START_TIME };

/* A run of messages from `offset` on that waits for the durable watermark
 * to reach `end` and for `seq` records to be acknowledged. */
typedef struct entry {
  int64_t offset, end;
  uint64_t seq;
} entry;

typedef struct lane {
  int32_t partition;
  int64_t next;      /* offset after the last message handled, -1 unknown */
  int64_t wm;        /* the partition's watermark, INT64_MIN: none */
  int64_t floor;     /* restored durable watermark, INT64_MIN: none */
  int64_t committed; /* last offset committed (or found committed) */
  int64_t confirmed; /* last offset the broker confirmed committed (or found committed), -1: none */
  uint64_t messages; /* handled, for metrics */
  int64_t committed_wm;
  int eof;              /* at the end of its log */
  int64_t eof_since_us; /* mono */
  int skipping;         /* start = time: skipping older messages */
  int64_t start;        /* the offset (or logical offset) assigned */
  entry *q;             /* ring of entries */
  size_t qhead, qn, qcap;
} lane;

typedef struct ksrc {
  cs_source *src;
  /* options */
  char *brokers, *topic, *group;
  char **config;
  size_t nconfig;
  int start_mode, partitions;
  int64_t start_us, commit_us, idle_us, exit_idle_us, session_us, part_idle_us;
  /* state */
  uv_loop_t *loop;
  cs_kafka *k;
  lane *lanes;
  size_t nlanes;
  int32_t *lane_at; /* partition -> index in lanes, -1: not assigned */
  size_t nlane_at;
  int paused, stopped, ended, assigned_once;
  rd_kafka_message_t *cur; /* the message being delivered (for where()) */
  uv_timer_t tick;
  int tick_open;
  int64_t wm;                       /* watermark given to the pipeline, INT64_MIN: none */
  int64_t idle_since_us, idle_base; /* all partitions idle since (mono), and the watermark then */
  int64_t last_commit_us;
  uint64_t lineno, messages, skipped, clock_msgs, commits, commit_errors, rebalances;
  uint64_t assignments, revocations, invalid, non_trades, out_of_range, errors;
  int64_t first_us, last_us; /* mono: first and last message */
  /* Messages taken from the queue, delivered from bi on (a pause stops
   * delivery in the middle of a batch). */
  rd_kafka_message_t *batch[BATCH];
  size_t bi, bn;
  int64_t batch_us; /* mono: when the batch was taken */
  uint64_t gen; /* rebalances served */
  cs_log_limiter lim, lim_err;
} ksrc;

/* ----------------------------------------------------------------- lanes */

static lane *lane_of(ksrc *s, int32_t partition) {
  if (partition < 0 || (size_t)partition >= s->nlane_at || s->lane_at[partition] < 0) return NULL;
  return &s->lanes[s->lane_at[partition]];
}

static void lanes_clear(ksrc *s) {
  for (size_t i = 0; i < s->nlanes; i++) free(s->lanes[i].q);
  free(s->lanes);
  free(s->lane_at);
  s->lanes = NULL;
  s->lane_at = NULL;
  s->nlanes = s->nlane_at = 0;
}

/* The partition -> lane index, once the lanes are set. 0 or -1. */
static int index_lanes(ksrc *s) {
  size_t n = 0;
  for (size_t i = 0; i < s->nlanes; i++)
    if (s->lanes[i].partition >= 0 && (size_t)s->lanes[i].partition + 1 > n) n = (size_t)s->lanes[i].partition + 1;
  if (!n) return 0;
  if (!(s->lane_at = malloc(n * sizeof *s->lane_at))) return -1;
  s->nlane_at = n;
  for (size_t i = 0; i < n; i++) s->lane_at[i] = -1;
  for (size_t i = 0; i < s->nlanes; i++)
    if (s->lanes[i].partition >= 0) s->lane_at[s->lanes[i].partition] = (int32_t)i;
  return 0;
}

static int lane_push(lane *l, int64_t offset, int64_t end, uint64_t seq) {
  if (l->qn) {
    /* Runs merge while the window end does not grow: such a message is
     * durable no later than the run before it. Records to acknowledge
     * (no window end) merge only within one message. */
    entry *t = &l->q[(l->qhead + l->qn - 1) % l->qcap];
    if (end <= t->end && (t->end != INT64_MIN || t->offset == offset)) {
      if (seq > t->seq) t->seq = seq;
      return 0;
    }
  }
  if (l->qn == l->qcap) {
    size_t nc = l->qcap ? l->qcap * 2 : 16;
    entry *nq = malloc(nc * sizeof *nq);
    if (!nq) return -1;
    for (size_t k = 0; k < l->qn; k++) nq[k] = l->q[(l->qhead + k) % l->qcap];
    free(l->q);
    l->q = nq;
    l->qcap = nc;
    l->qhead = 0;
  }
  l->q[(l->qhead + l->qn++) % l->qcap] = (entry){offset, end, seq};
  return 0;
}

/* The first offset not yet durable, or -1 when unknown. */
static int64_t lane_durable(lane *l, int64_t dwm, uint64_t acked) {
  while (l->qn) {
    entry *e = &l->q[l->qhead];
    if (e->end > dwm || e->seq > acked) return e->offset;
    l->qhead = (l->qhead + 1) % l->qcap;
    l->qn--;
  }
  return l->next;
}

/* --------------------------------------------------------------- commits */

/* Commits every partition's durable offset that moved, with the durable
 * watermark as metadata. Asynchronous (the result is logged by commit_cb),
 * except on a revoke: the member that gets the partitions next reads the
 * committed offsets as soon as the group has rebalanced, and an
 * asynchronous commit still in flight then would make it re-read (and
 * re-emit) windows this member has already emitted. */
static void commit(ksrc *s, const char *why, int sync) {
  if (!s->k || !s->nlanes || !s->src->durable) return;
  int64_t dwm;
  uint64_t acked;
  s->src->durable(s->src->ud, &dwm, &acked);
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)s->nlanes);
  for (size_t i = 0; i < s->nlanes; i++) {
    lane *l = &s->lanes[i];
    int64_t off = lane_durable(l, dwm, acked);
    /* Windows at or below the floor were emitted before this run. */
    int64_t meta_wm = dwm > l->floor ? dwm : l->floor;
    if (off < 0 || (off == l->committed && meta_wm == l->committed_wm)) continue;
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(list, s->topic, l->partition);
    tp->offset = off;
    char md[96];
    if (meta_wm == INT64_MIN)
      snprintf(md, sizeof md, "{\"cstream\":1,\"durable_us\":null}");
    else
      snprintf(md, sizeof md, "{\"cstream\":1,\"durable_us\":%lld}", (long long)meta_wm);
    tp->metadata = strdup(md);
    tp->metadata_size = tp->metadata ? strlen(md) : 0;
    l->committed = off;
    l->committed_wm = meta_wm;
  }
  if (list->cnt) {
    rd_kafka_resp_err_t e = rd_kafka_commit(cs_kafka_rk(s->k), list, !sync);
    if (e)
      cs_log_limited(&s->lim_err, CS_LOG_WARN, s->src->label, "commit (%s): %s", why, rd_kafka_err2str(e));
    else
      cs_debug(s->src->label, "committing %d partitions (%s)", list->cnt, why);
  }
  rd_kafka_topic_partition_list_destroy(list);
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque) {
  ksrc *s = cs_kafka_ud(opaque);
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  for (int i = 0; !err && offsets && i < offsets->cnt; i++)
    if (offsets->elems[i].err) err = offsets->elems[i].err;
  if (err) {
    s->commit_errors++;
    /* The next commit carries the same or later offsets. */
    for (size_t i = 0; i < s->nlanes; i++) s->lanes[i].committed = -1;
    cs_log_limited(&s->lim_err, CS_LOG_WARN, s->src->label, "offset commit failed (retried): %s",
                   rd_kafka_err2str(err));
  } else {
    s->commits++;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
      lane *l = lane_of(s, offsets->elems[i].partition);
      if (l && offsets->elems[i].offset >= 0 && offsets->elems[i].offset > l->confirmed)
        l->confirmed = offsets->elems[i].offset;
    }
  }
}

/* --------------------------------------------------------------- rebalance */

static int64_t parse_meta(const rd_kafka_topic_partition_t *tp) {
  if (!tp->metadata || !tp->metadata_size || tp->metadata_size > 200) return INT64_MIN;
  char buf[208];
  memcpy(buf, tp->metadata, tp->metadata_size);
  buf[tp->metadata_size] = 0;
  const char *p = strstr(buf, "\"durable_us\":");
  if (!strstr(buf, "\"cstream\":1") || !p) return INT64_MIN;
  p += 13;
  char *end;
  long long v = strtoll(p, &end, 10);
  return end == p ? INT64_MIN : (int64_t)v;
}

static void fail_source(ksrc *s, const char *msg) {
  if (s->stopped || s->ended) return;
  s->ended = 1;
  cs_error(s->src->label, "%s", msg);
  s->src->on_fail(s->src->ud, msg);
}

static void assign(ksrc *s, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts) {
  lanes_clear(s);
  s->wm = INT64_MIN;
  s->idle_since_us = 0;
  if (s->start_mode == START_COMMITTED) {
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 3; attempt++) { /* blocks the loop: a rebalance is rare */
      e = rd_kafka_committed(rk, parts, 5000);
      if (!e) break;
      cs_warn(s->src->label, "reading the committed offsets: %s (attempt %d)", rd_kafka_err2str(e), attempt + 1);
    }
    if (e) {
      char msg[256];
      snprintf(msg, sizeof msg, "cannot read the committed offsets of group %s: %s", s->group, rd_kafka_err2str(e));
      rd_kafka_assign(rk, NULL);
      fail_source(s, msg);
      return;
    }
  } else if (s->start_mode == START_TIME) {
    for (int i = 0; i < parts->cnt; i++) parts->elems[i].offset = s->start_us / 1000;
    if (rd_kafka_offsets_for_times(rk, parts, 10000) != 0)
      for (int i = 0; i < parts->cnt; i++) parts->elems[i].offset = -1;
  }
  size_t cnt = parts->cnt > 0 ? (size_t)parts->cnt : 0;
  s->lanes = cnt ? calloc(cnt, sizeof *s->lanes) : NULL;
  if (!s->lanes && cnt) {
    rd_kafka_assign(rk, NULL);
    fail_source(s, "out of memory");
    return;
  }
  s->nlanes = cnt;
  char list[512] = "";
  size_t ll = 0;
  for (int i = 0; i < parts->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &parts->elems[i];
    lane *l = &s->lanes[i];
    l->partition = tp->partition;
    l->wm = l->floor = l->committed_wm = INT64_MIN;
    l->next = l->committed = l->confirmed = -1;
    switch (s->start_mode) {
      case START_COMMITTED:
        if (tp->offset >= 0) {
          l->next = l->committed = l->confirmed = tp->offset;
          l->floor = l->committed_wm = parse_meta(tp);
          l->wm = l->floor;
        } else {
          tp->offset = RD_KAFKA_OFFSET_BEGINNING;
        }
        break;
      case START_EARLIEST: tp->offset = RD_KAFKA_OFFSET_BEGINNING; break;
      case START_LATEST: tp->offset = RD_KAFKA_OFFSET_END; break;
      case START_TIME:
        if (tp->err || tp->offset < 0) { /* not answered (the embedded broker): search here */
          tp->offset = RD_KAFKA_OFFSET_BEGINNING;
          l->skipping = 1;
        } else {
          l->next = tp->offset;
        }
        break;
    }
    tp->err = 0;
    l->start = tp->offset;
    if (ll < sizeof list - 48)
      ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s%d@%s", i ? " " : "", (int)tp->partition,
                             tp->offset >= 0 ? "" : tp->offset == RD_KAFKA_OFFSET_BEGINNING ? "start" : "end");
    if (ll < sizeof list - 24 && tp->offset >= 0)
      ll += (size_t)snprintf(list + ll, sizeof list - ll, "%lld", (long long)tp->offset);
  }
  if (index_lanes(s) != 0) {
    rd_kafka_assign(rk, NULL);
    fail_source(s, "out of memory");
    return;
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
  if (e) {
    char msg[256];
    snprintf(msg, sizeof msg, "assigning partitions of %s: %s", s->topic, rd_kafka_err2str(e));
    fail_source(s, msg);
    return;
  }
  if (s->paused) rd_kafka_pause_partitions(rk, parts);
  s->assigned_once = 1;
  cs_info(s->src->label, "assigned %s partitions %s", s->topic, parts->cnt ? list : "(none)");
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
  ksrc *s = cs_kafka_ud(opaque);
  s->rebalances++;
  s->gen++;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) s->assignments++;
  else s->revocations++;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && !s->stopped && !s->ended) {
    assign(s, rk, parts);
    return;
  }
  /* Revoked (or an error, or closing): commit what is durable, then drop
   * the state of every partition (eager rebalancing revokes them all). */
  commit(s, "revoke", 1);
  if (s->nlanes && s->src->reset && !s->stopped && !s->ended) s->src->reset(s->src->ud);
  if (s->nlanes) cs_info(s->src->label, "partitions revoked (%zu)", s->nlanes);
  lanes_clear(s);
  s->wm = INT64_MIN;
  rd_kafka_assign(rk, NULL);
}

/* ---------------------------------------------------------------- events */

/* A partition at the end of its log for partition_idle (and not paused)
 * is idle: it no longer holds the watermark back. Not at once: between two
 * fetches a busy partition is briefly at the end too. */
static int lane_idle(const ksrc *s, const lane *l, int64_t now) {
  return l->eof && !s->paused && now - l->eof_since_us >= s->part_idle_us;
}

static void update_watermark(ksrc *s) {
  int64_t min = INT64_MAX, now = 0;
  int active = 0;
  for (size_t i = 0; i < s->nlanes; i++) {
    lane *l = &s->lanes[i];
    if (l->eof && !now) now = cs_time_mono_us(); /* only then: a clock read costs */
    if (lane_idle(s, l, now)) continue;
    active = 1;
    if (l->wm < min) min = l->wm;
  }
  if (!active || min == INT64_MIN) return;
  if (s->wm == INT64_MIN || min > s->wm) {
    s->wm = min;
    s->src->advance(s->src->ud, min);
  }
}

static void handle_error(ksrc *s, rd_kafka_message_t *m) {
  char msg[512];
  const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : s->topic;
  switch (m->err) {
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
      s->out_of_range++;
      snprintf(msg, sizeof msg,
               "%s [%d]: offset %lld is no longer on the broker (trimmed, or deleted by retention; the embedded "
               "broker keeps only the newest ~5 MiB per partition): messages were lost before they were "
               "processed; stopping rather than skip them (%s)",
               topic, (int)m->partition, (long long)m->offset, rd_kafka_message_errstr(m));
      fail_source(s, msg);
      return;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__FATAL:
      snprintf(msg, sizeof msg, "topic %s: %s", topic, rd_kafka_message_errstr(m));
      fail_source(s, msg);
      return;
    default:
      s->errors++;
      cs_log_limited(&s->lim_err, CS_LOG_WARN, s->src->label, "%s [%d]: %s", topic, (int)m->partition,
                     rd_kafka_message_errstr(m));
  }
}

static void handle(ksrc *s, rd_kafka_message_t *m) {
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    lane *l = lane_of(s, m->partition);
    if (l && !l->eof) {
      l->eof = 1;
      l->eof_since_us = cs_time_mono_us();
      if (l->next < m->offset) l->next = m->offset;
    }
    return;
  }
  if (m->err) {
    handle_error(s, m);
    return;
  }
  lane *l = lane_of(s, m->partition);
  if (!l || (l->next >= 0 && m->offset < l->next)) return; /* not ours (any more), or seen */
  l->eof = 0;
  if (!s->messages++) s->first_us = s->batch_us;
  rd_kafka_timestamp_type_t tst;
  int64_t ts = rd_kafka_message_timestamp(m, &tst);
  if (l->skipping) {
    if (ts >= 0 && ts * 1000 < s->start_us) {
      s->skipped++;
      l->next = m->offset + 1;
      return;
    }
    l->skipping = 0;
  }
  s->src->floor_us = l->floor;
  s->src->recv_us = ts > 0 ? ts * 1000 : cs_time_wall_us(); /* produce time: latency figures */
  s->cur = m;
  s->src->on_line(s->src->ud, m->payload ? m->payload : "", m->len, 0, ++s->lineno, NULL);
  s->cur = NULL;
  if (s->ended || s->stopped) return;
  const cs_line_result *r = &s->src->result;
  l->messages++;
  if (r->kind == CS_LINE_INVALID) s->invalid++;
  else if (r->kind == CS_LINE_OTHER) s->non_trades++;
  else if (r->kind == CS_LINE_CLOCK) s->clock_msgs++;
  if (r->wm_us > l->wm) {
    /* As on a single stream, the watermark moves with each message: the
     * next one is judged by it. Only the slowest partition can move it. */
    int was_min = s->wm == INT64_MIN || l->wm <= s->wm;
    l->wm = r->wm_us;
    if (was_min) update_watermark(s);
  }
  if ((r->end_us != INT64_MIN || r->seq) && lane_push(l, m->offset, r->end_us, r->seq) != 0) {
    fail_source(s, "out of memory tracking offsets");
    return;
  }
  l->next = m->offset + 1;
}

/* The consumer queue has events: messages, rebalances, logs, errors. */
static void drop_batch(ksrc *s) {
  while (s->bi < s->bn) rd_kafka_message_destroy(s->batch[s->bi++]);
  s->bi = s->bn = 0;
}

/* A rebalance was served while a batch was taken from the queue: the batch
 * may mix messages from before and after it. Drop it and go on from each
 * partition's own position (rebalances are rare). */
static void restart_positions(ksrc *s) {
  drop_batch(s);
  if (!s->nlanes) return;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)s->nlanes);
  for (size_t i = 0; i < s->nlanes; i++)
    rd_kafka_topic_partition_list_add(list, s->topic, s->lanes[i].partition)->offset =
        s->lanes[i].next >= 0 ? s->lanes[i].next : s->lanes[i].start;
  rd_kafka_error_t *e = rd_kafka_seek_partitions(cs_kafka_rk(s->k), list, 0);
  if (e) {
    char msg[256];
    snprintf(msg, sizeof msg, "seeking after a rebalance: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    fail_source(s, msg);
  }
  rd_kafka_topic_partition_list_destroy(list);
}

static void ks_wake(void *ud) {
  ksrc *s = ud;
  int n = 0;
  s->batch_us = cs_time_mono_us();
  s->src->now_us = cs_time_wall_us();
  while (n < BUDGET && !s->paused && !s->stopped && !s->ended) {
    if (s->bi == s->bn) {
      uint64_t gen = s->gen;
      ssize_t got = rd_kafka_consume_batch_queue(cs_kafka_queue(s->k), 0, s->batch, BATCH);
      if (got <= 0) {
        s->bi = s->bn = 0;
        break;
      }
      s->bi = 0;
      s->bn = (size_t)got;
      /* One clock read per batch, not per message: the wall clock for the
       * latency figures, the monotonic one for the rate. */
      s->batch_us = cs_time_mono_us();
      s->src->now_us = cs_time_wall_us();
      if (s->gen != gen) {
        restart_positions(s);
        continue;
      }
    }
    rd_kafka_message_t *m = s->batch[s->bi++];
    n++;
    handle(s, m);
    rd_kafka_message_destroy(m);
  }
  if (n && s->messages) s->last_us = cs_time_mono_us();
  if (!s->stopped && !s->ended) update_watermark(s);
  if ((n == BUDGET || s->bi < s->bn) && !s->paused) cs_kafka_rewake(s->k);
}

/* Paused, the queue is still served now and then — rebalances, errors, and
 * librdkafka's max.poll.interval.ms — keeping whatever message comes. */
static void serve_while_paused(ksrc *s) {
  if (s->bi) {
    memmove(s->batch, s->batch + s->bi, (s->bn - s->bi) * sizeof *s->batch);
    s->bn -= s->bi;
    s->bi = 0;
  }
  if (s->bn == BATCH) return;
  uint64_t gen = s->gen;
  ssize_t got = rd_kafka_consume_batch_queue(cs_kafka_queue(s->k), 0, s->batch + s->bn, BATCH - s->bn);
  if (got > 0) s->bn += (size_t)got;
  if (s->gen != gen) restart_positions(s);
}

static void on_tick(uv_timer_t *t) {
  ksrc *s = t->data;
  if (s->stopped || s->ended) return;
  /* Also when nothing comes: librdkafka counts the time between two polls
   * (max.poll.interval.ms) and leaves the group when it is too long. */
  if (s->paused)
    serve_while_paused(s);
  else
    ks_wake(s);
  if (s->stopped || s->ended) return;
  int64_t now = cs_time_mono_us();
  update_watermark(s); /* partitions idle long enough leave the minimum */
  int all_idle = s->nlanes > 0 && !s->paused;
  int64_t max_wm = s->wm;
  for (size_t i = 0; i < s->nlanes && all_idle; i++) {
    all_idle = s->lanes[i].eof;
    if (s->lanes[i].wm > max_wm) max_wm = s->lanes[i].wm;
  }
  if (!all_idle) {
    s->idle_since_us = 0;
  } else {
    if (!s->idle_since_us) {
      s->idle_since_us = now;
      s->idle_base = max_wm;
    }
    int64_t idle = now - s->idle_since_us;
    if (s->exit_idle_us > 0 && idle >= s->exit_idle_us) {
      cs_info(s->src->label, "every partition at the end of its log for %.1f s: ending", (double)idle / 1e6);
      s->ended = 1;
      commit(s, "end of input", 0);
      s->src->on_end(s->src->ud);
      return;
    }
    /* Quiet everywhere: event time goes on with the wall clock. */
    if (s->idle_us > 0 && idle >= s->idle_us && s->idle_base != INT64_MIN) {
      int64_t wm = s->idle_base + idle;
      if (s->wm == INT64_MIN || wm > s->wm) {
        s->wm = wm;
        s->src->advance(s->src->ud, wm);
      }
    }
  }
  if (now - s->last_commit_us >= s->commit_us) {
    s->last_commit_us = now;
    commit(s, "periodic", 0);
  }
}

/* ------------------------------------------------------------ life cycle */

static void ks_free(ksrc *s) {
  if (!s) return;
  free(s->brokers);
  free(s->topic);
  free(s->group);
  cs_opts_list_free(s->config, s->nconfig);
  lanes_clear(s);
  free(s);
}

static int parse_start(ksrc *s, const char *v, cs_err *err) {
  if (strcmp(v, "committed") == 0) {
    s->start_mode = START_COMMITTED;
  } else if (strcmp(v, "earliest") == 0) {
    s->start_mode = START_EARLIEST;
  } else if (strcmp(v, "latest") == 0) {
    s->start_mode = START_LATEST;
  } else {
    const char *why;
    char *end;
    s->start_mode = START_TIME;
    if (cs_time_parse_rfc3339(v, strlen(v), &s->start_us, &why) == 0) return 0;
    double secs = strtod(v, &end);
    if (end == v || *end || secs < 0)
      return cs_err_set(err,
                        "option 'start': '%s' is not committed, earliest, latest, an RFC 3339 time or seconds since "
                        "the epoch",
                        v);
    s->start_us = (int64_t)(secs * 1e6);
  }
  return 0;
}

static int ks_init(cs_source *src, const cs_opts *opts, cs_err *err) {
  ksrc *s = calloc(1, sizeof *s);
  if (!s) return cs_err_set(err, "out of memory");
  s->src = src;
  s->brokers = strdup(cs_opts_str(opts, "brokers"));
  s->topic = strdup(cs_opts_str(opts, "topic"));
  s->group = strdup(cs_opts_str(opts, "group"));
  s->partitions = (int)cs_opts_int(opts, "partitions");
  s->commit_us = cs_opts_int(opts, "commit_interval");
  s->idle_us = cs_opts_int(opts, "idle");
  s->part_idle_us = cs_opts_int(opts, "partition_idle");
  s->exit_idle_us = cs_opts_int(opts, "exit_idle");
  s->session_us = cs_opts_int(opts, "session_timeout");
  s->wm = INT64_MIN;
  cs_log_limiter init = CS_LOG_LIMITER_INIT;
  s->lim = s->lim_err = init;
  int cfg_rc = cs_opts_list_copy(cs_opts_get(opts, "config"), &s->config, &s->nconfig);
  src->ctx = s;
  if (!s->brokers || !s->topic || !s->group || cfg_rc != 0) {
    cs_err_set(err, "out of memory");
    goto error;
  }
  if (parse_start(s, cs_opts_str(opts, "start"), err) != 0) goto error;
  const char *bad = NULL;
  if (!s->topic[0]) bad = "option 'topic': must not be empty";
  else if (!s->brokers[0]) bad = "option 'brokers': must not be empty";
  else if (!s->group[0]) bad = "option 'group': must not be empty";
  else if (s->partitions < 1) bad = "option 'partitions': must be >= 1";
  else if (s->commit_us < 10000) bad = "option 'commit_interval': must be at least 10ms";
  else if (s->session_us < 1000000) bad = "option 'session_timeout': must be at least 1s";
  if (bad) {
    cs_err_set(err, "%s", bad);
    goto error;
  }
  /* Event time is driven here, partition by partition. */
  src->external_clock = 1;
  return 0;
error:
  ks_free(s);
  src->ctx = NULL;
  return -1;
}

static int ks_start(cs_source *src, uv_loop_t *loop, cs_err *err) {
  ksrc *s = src->ctx;
  char num[32];
  s->loop = loop;
  if (strcmp(s->brokers, CS_KAFKA_EMBEDDED) == 0 && cs_kafka_embedded_topic(s->topic, s->partitions, err) != 0)
    return -1;
  rd_kafka_conf_t *conf = cs_kafka_conf(s->brokers, err);
  if (!conf) return -1;
  snprintf(num, sizeof num, "%lld", (long long)(s->session_us / 1000));
  char hb[32];
  snprintf(hb, sizeof hb, "%lld", (long long)(s->session_us / 3000));
  int rc = cs_kafka_set(conf, "group.id", s->group, err) || cs_kafka_set(conf, "enable.auto.commit", "false", err) ||
           cs_kafka_set(conf, "enable.auto.offset.store", "false", err) ||
           cs_kafka_set(conf, "auto.offset.reset", "error", err) ||
           cs_kafka_set(conf, "enable.partition.eof", "true", err) ||
           cs_kafka_set(conf, "partition.assignment.strategy", "range,roundrobin", err) ||
           cs_kafka_set(conf, "session.timeout.ms", num, err) || cs_kafka_set(conf, "heartbeat.interval.ms", hb, err) ||
           /* Latency: the embedded broker answers a fetch only after this
            * long when it had nothing at first, even if data came since. */
           cs_kafka_set(conf, "fetch.wait.max.ms", "50", err);
  if (!rc) rc = cs_kafka_set_props(conf, s->config, s->nconfig, "option 'config'", err);
  if (rc) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
  rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
  cs_kafka_cbs cbs = {s, ks_wake, NULL};
  if (!(s->k = cs_kafka_create(loop, RD_KAFKA_CONSUMER, conf, src->label, &cbs, err))) return -1;
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, s->topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(cs_kafka_rk(s->k), sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (e) return cs_err_set(err, "subscribing to %s: %s", s->topic, rd_kafka_err2str(e));
  uv_timer_init(loop, &s->tick);
  s->tick.data = s;
  s->tick_open = 1;
  uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
  s->last_commit_us = cs_time_mono_us();
  cs_info(src->label, "consuming %s on %s as group %s (start: %s)", s->topic, s->brokers, s->group,
          s->start_mode == START_COMMITTED ? "committed" : s->start_mode == START_EARLIEST ? "earliest"
                                                       : s->start_mode == START_LATEST     ? "latest"
                                                                                           : "time");
  return 0;
}

static void set_paused(ksrc *s, int pause) {
  s->paused = pause;
  /* An end of log seen before or during a pause is stale on resume: paused
   * partitions are not fetched, so data may be waiting in them. They count
   * as idle again only after partition_idle more at the end (else the
   * partitions fetched first could move the watermark past the windows of
   * the others, whose trades would then come late). */
  if (!pause) {
    int64_t now = cs_time_mono_us();
    for (size_t i = 0; i < s->nlanes; i++)
      if (s->lanes[i].eof) s->lanes[i].eof_since_us = now;
  }
  if (!s->k || !s->nlanes) return;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)s->nlanes);
  for (size_t i = 0; i < s->nlanes; i++) rd_kafka_topic_partition_list_add(list, s->topic, s->lanes[i].partition);
  if (pause)
    rd_kafka_pause_partitions(cs_kafka_rk(s->k), list);
  else
    rd_kafka_resume_partitions(cs_kafka_rk(s->k), list);
  rd_kafka_topic_partition_list_destroy(list);
}

static void ks_pause(cs_source *src) {
  ksrc *s = src->ctx;
  if (!s->paused) set_paused(s, 1);
}

static void ks_resume(cs_source *src) {
  ksrc *s = src->ctx;
  if (!s->paused) return;
  set_paused(s, 0);
  if (s->k && !s->stopped) cs_kafka_rewake(s->k);
}

static void ks_stop(cs_source *src) {
  ksrc *s = src->ctx;
  if (s->stopped) return;
  s->stopped = 1;
  if (s->tick_open) {
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, NULL);
    s->tick_open = 0;
  }
  cs_kafka_close(s->k);
}

static void ks_destroy(cs_source *src) {
  ksrc *s = src->ctx;
  if (!s) return;
  drop_batch(s);
  if (s->k) {
    /* What became durable while the sinks drained; then leave the group
     * (the final revoke commits again if anything moved). */
    commit(s, "stop", 1);
    cs_kafka_destroy(s->k);
    s->k = NULL;
    double span = (double)(s->last_us - s->first_us) / 1e6;
    cs_info(src->label,
            "%llu messages in %.3f s from the first to the last (%.0f/s), %llu skipped (before start), %llu commits, "
            "%llu commit errors, %llu rebalances",
            (unsigned long long)s->messages, span, span > 0 ? (double)s->messages / span : 0.0,
            (unsigned long long)s->skipped, (unsigned long long)s->commits, (unsigned long long)s->commit_errors,
            (unsigned long long)s->rebalances);
  }
  ks_free(s);
}

static int ks_where(const cs_source *src, char *buf, size_t size) {
  const ksrc *s = src->ctx;
  if (!s->cur) return -1;
  snprintf(buf, size, "%s [%d] offset %lld", s->topic, (int)s->cur->partition, (long long)s->cur->offset);
  return 0;
}

static void ks_metrics(const cs_source *src, cs_metrics_page *pg, const char *labels) {
  const ksrc *s = src->ctx;
#define C(name, help, v) cs_metrics_counter(pg, "cstream_kafka_source_" name, help, labels, (double)(v))
  C("messages_total", "Messages consumed and handed to the pipeline (before start: skipped, not counted)",
    s->messages);
  C("invalid_messages_total", "Messages that are not valid JSON or hold no valid trade (counted invalid; logged)",
    s->invalid);
  C("non_trade_messages_total", "Well-formed messages that are not trades (counted ignored; clock records apart)",
    s->non_trades);
  C("clock_records_total", "Clock records read (the feed's clock, written by a cs.kafka sink)", s->clock_msgs);
  C("skipped_messages_total", "Messages older than start = <time>, skipped", s->skipped);
  C("commits_total", "Offset commits the broker confirmed", s->commits);
  C("commit_errors_total", "Offset commits that failed (retried with the next one)", s->commit_errors);
  C("assignments_total", "Partition assignments (rebalances)", s->assignments);
  C("revocations_total", "Partition revocations (rebalances: open windows dropped, read again)", s->revocations);
  C("offset_out_of_range_total", "Offsets no longer on the broker (each stops the pipeline)", s->out_of_range);
  C("errors_total", "Other consumer errors (logged; librdkafka retries)", s->errors);
#undef C
  cs_metrics_gauge(pg, "cstream_kafka_source_assigned_partitions", "Partitions assigned to this consumer", labels,
                   (double)s->nlanes);
  for (size_t i = 0; i < s->nlanes; i++) {
    const lane *l = &s->lanes[i];
    char lb[640], part[16];
    snprintf(lb, sizeof lb, "%s", labels);
    snprintf(part, sizeof part, "%d", (int)l->partition);
    cs_metrics_label_add(lb, sizeof lb, "topic", s->topic);
    cs_metrics_label_add(lb, sizeof lb, "partition", part);
    cs_metrics_counter(pg, "cstream_kafka_source_partition_messages_total", "Messages consumed, per partition", lb,
                       (double)l->messages);
    if (l->next >= 0)
      cs_metrics_gauge(pg, "cstream_kafka_source_position", "Offset of the next message to read, per partition", lb,
                       (double)l->next);
    if (l->confirmed >= 0)
      cs_metrics_gauge(pg, "cstream_kafka_source_committed_offset",
                       "Offset committed for the group (confirmed by the broker), per partition", lb,
                       (double)l->confirmed);
    int64_t lo, hi;
    if (s->k && l->next >= 0 &&
        rd_kafka_get_watermark_offsets(cs_kafka_rk(s->k), s->topic, l->partition, &lo, &hi) == 0 && hi >= 0)
      cs_metrics_gauge(pg, "cstream_kafka_source_lag_messages",
                       "Messages on the broker not yet read (end of the log, as last fetched, minus the position)",
                       lb, (double)(hi > l->next ? hi - l->next : 0));
  }
}

static const cs_optdef kafka_options[] = {
    {"brokers", CS_OPT_STRING, NULL, 0, NULL,
     "bootstrap brokers \"host:port,...\", or \"embedded\" (the in-process broker, in memory: development and tests)"},
    {"topic", CS_OPT_STRING, NULL, 0, NULL, "topic to consume"},
    {"group", CS_OPT_STRING, "cstream", 0, NULL, "consumer group: partitions are shared among its members"},
    {"start", CS_OPT_STRING, "committed", 0, NULL,
     "committed (the group's offsets; the start of the log without), earliest, latest, or a time (RFC 3339 or "
     "seconds since the epoch; message timestamps)"},
    {"partitions", CS_OPT_INTEGER, "4", 0, NULL, "partitions of the topic when the embedded broker creates it"},
    {"commit_interval", CS_OPT_DURATION, "1s", 0, NULL, "how often durable offsets are committed"},
    {"partition_idle", CS_OPT_DURATION, "1s", 0, NULL,
     "a partition at the end of its log this long no longer holds the watermark back"},
    {"idle", CS_OPT_DURATION, "3s", 0, NULL,
     "every partition at the end of its log this long: event time goes on with the wall clock; 0: never"},
    {"exit_idle", CS_OPT_DURATION, "0", 0, NULL,
     "end once every partition has been at the end of its log this long (batch runs, tests); 0: never"},
    {"session_timeout", CS_OPT_DURATION, "6s", 0, NULL,
     "group session timeout: how soon a dead member's partitions go to another"},
    {"config", CS_OPT_STRINGS, NULL, 1, NULL, "extra librdkafka properties, \"key=value\" (applied last)"},
    {NULL, 0, NULL, 0, NULL, NULL}};

const cs_source_vt cs_source_kafka = {
    .name = "kafka",
    .help = "consumes trade records or raw frames from a Kafka topic (consumer group, at least once)",
    .options = kafka_options,
    .init = ks_init,
    .start = ks_start,
    .pause = ks_pause,
    .resume = ks_resume,
    .stop = ks_stop,
    .destroy = ks_destroy,
    .where = ks_where,
    .metrics = ks_metrics,
};
