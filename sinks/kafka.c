/* cs.kafka (sink): writes each record as one Kafka message — in a pipeline
 * without a window each trade as a version-1 trade record (cs_row.h), in
 * a pipeline with one each window row as its JSON row — keyed by
 * product_id, so one product's records stay in order in one partition.
 * With value = "raw" (trades only) it forwards the exchange frame each
 * trade came in, exactly as received, once per frame (cs_trade.frame):
 * keyed by the product of the frame's first trade, the message stands for
 * all the frame's trades (acknowledged together).
 *
 * Producer (librdkafka on the pipeline's loop, cs_kafka): idempotent
 * (enable.idempotence = true, hence acks = all and ordered retries),
 * lz4-compressed batches of up to `batch` messages lingering `linger`,
 * message timestamp = produce time. Records are acknowledged to the
 * pipeline (cs_sink_ack, in order) when their delivery reports say the
 * broker has them; a failed delivery report or a fatal producer error
 * stops the pipeline with the reason — a record is never dropped
 * silently. By default librdkafka retries a record until it is delivered
 * (delivery_timeout = 0): a broker that is down holds the pipeline back.
 * At most `max_inflight` records wait for their reports: beyond it write
 * answers CS_SINK_BUSY (the pipeline pauses a replay; a live source
 * buffers up to its own bound) and the sink calls cs_sink_ready once half
 * of them are confirmed.
 *
 * Quiet markets: in a pipeline without a window the sink also writes the
 * feed's clock — {"v":1,"type":"clock","time":"..."} — to every partition
 * about once a second (`clock`), so that a Kafka source can close windows
 * when no trade comes; never while records wait for it (a clock must not
 * overtake the trades before it). */
#include <stdlib.h>
#include <string.h>

#include "cs_buf.h"
#include "cs_kafka.h"
#include "cs_kafka_stats.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_plugin.h"
#include "cs_row.h"
#include "cs_time.h"

#define PARTITIONS_REFRESH_US INT64_C(30000000)

typedef struct ksink {
  cs_sink *sink;
  /* options */
  char *brokers, *topic, *compression;
  int key_product, partitions, raw;
  int64_t linger_us, delivery_timeout_us, clock_us, batch, max_inflight;
  char **config;
  size_t nconfig;
  /* state */
  cs_kafka *k;
  rd_kafka_topic_t *rkt;
  cs_buf buf;
  size_t *offs; /* record i's value is buf.data + offs[i] .. offs[i + 1] */
  const char **keys; /* record i's key: the caller's product_id */
  size_t *key_lens, cap;
  uint32_t *counts; /* raw: records (trades) message i stands for */
  /* Records produced and not yet acknowledged, in order: sequence numbers
   * ack_seq .. next_seq-1; done[seq & mask] once delivered. A message
   * standing for k records (a raw frame) has the first one's number as
   * its opaque and span[seq & mask] = k. */
  uint8_t *done;
  uint32_t *span;
  uint64_t mask, next_seq, ack_seq, to_ack;
  int busy, stopped;
  char *failure; /* a delivery failed: reported after the queue is served */
  /* clock records */
  uv_loop_t *loop;
  uv_timer_t clock;
  int clock_open;
  int64_t last_clock_us;
  int32_t npart;          /* partitions of the topic, 0 until known */
  int64_t npart_at;       /* mono time of the last look-up */
  uv_work_t md_work;
  int md_running;
  int32_t md_result;
  char md_error[160];
  /* counters, logged at the end and shown on /metrics */
  uint64_t produced, delivered, clocks, busy_answers;
  uint64_t messages, messages_delivered, delivery_errors, clock_errors, queue_full_waits, raw_frames;
  cs_kafka_stats stats; /* librdkafka's statistics, the latest */
  cs_log_limiter lim;
} ksink;

static void ks_free(ksink *s) {
  if (!s) return;
  free(s->brokers);
  free(s->topic);
  free(s->compression);
  cs_opts_list_free(s->config, s->nconfig);
  cs_buf_free(&s->buf);
  free(s->offs);
  free(s->keys);
  free(s->key_lens);
  free(s->counts);
  free(s->done);
  free(s->span);
  free(s->failure);
  free(s);
}

static int ks_init(cs_sink *sink, const cs_opts *opts, cs_err *err) {
  ksink *s = calloc(1, sizeof *s);
  if (!s) return cs_err_set(err, "out of memory");
  s->sink = sink;
  cs_buf_init(&s->buf);
  s->brokers = strdup(cs_opts_str(opts, "brokers"));
  s->topic = strdup(cs_opts_str(opts, "topic"));
  s->compression = strdup(cs_opts_str(opts, "compression"));
  s->key_product = strcmp(cs_opts_str(opts, "key"), "product_id") == 0;
  s->raw = strcmp(cs_opts_str(opts, "value"), "raw") == 0;
  s->partitions = (int)cs_opts_int(opts, "partitions");
  s->linger_us = cs_opts_int(opts, "linger");
  s->batch = cs_opts_int(opts, "batch");
  s->max_inflight = cs_opts_int(opts, "max_inflight");
  s->delivery_timeout_us = cs_opts_int(opts, "delivery_timeout");
  s->clock_us = cs_opts_int(opts, "clock");
  cs_log_limiter init = CS_LOG_LIMITER_INIT;
  s->lim = init;
  s->mask = 1023;
  s->done = calloc(s->mask + 1, 1);
  s->span = calloc(s->mask + 1, sizeof *s->span);
  int cfg_rc = cs_opts_list_copy(cs_opts_get(opts, "config"), &s->config, &s->nconfig);
  if (!s->brokers || !s->topic || !s->compression || !s->done || !s->span || cfg_rc != 0) {
    ks_free(s);
    return cs_err_set(err, "out of memory");
  }
  const char *bad = NULL;
  if (!s->topic[0]) bad = "option 'topic': must not be empty";
  else if (!s->brokers[0]) bad = "option 'brokers': must not be empty";
  else if (s->partitions < 1) bad = "option 'partitions': must be >= 1";
  else if (s->batch < 1 || s->batch > 1000000) bad = "option 'batch': must be 1..1000000";
  else if (s->max_inflight < 1 || s->max_inflight > 10000000) bad = "option 'max_inflight': must be 1..10000000";
  if (bad) {
    ks_free(s);
    return cs_err_set(err, "%s", bad);
  }
  sink->ctx = s;
  if (s->raw) sink->frames = "option 'value' = \"raw\"";
  return 0;
}

/* ------------------------------------------------------ acknowledgements */

/* Room for `k` more sequence numbers in the ring. */
static int ring_reserve(ksink *s, uint64_t k) {
  uint64_t need = s->next_seq - s->ack_seq + k;
  if (need <= s->mask + 1) return 0;
  uint64_t cap = s->mask + 1;
  while (cap < need) cap *= 2;
  uint8_t *nd = calloc(cap, 1);
  uint32_t *ns = calloc(cap, sizeof *ns);
  if (!nd || !ns) {
    free(nd);
    free(ns);
    return -1;
  }
  for (uint64_t q = s->ack_seq; q < s->next_seq; q++) {
    nd[q & (cap - 1)] = s->done[q & s->mask];
    ns[q & (cap - 1)] = s->span[q & s->mask];
  }
  free(s->done);
  free(s->span);
  s->done = nd;
  s->span = ns;
  s->mask = cap - 1;
  return 0;
}

static void set_failure(ksink *s, const char *fmt, const char *a, const char *b) {
  if (s->failure) return;
  char msg[512];
  snprintf(msg, sizeof msg, fmt, a, b);
  s->failure = strdup(msg);
  if (!s->failure) s->failure = strdup("out of memory");
}

/* Delivery report, on the loop thread (inside rd_kafka_poll). */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  ksink *s = cs_kafka_ud(opaque);
  if (!m->_private) { /* a clock record */
    if (m->err) s->clock_errors++;
    if (m->err)
      cs_log_limited(&s->lim, CS_LOG_WARN, s->sink->label, "clock record to %s [%d] not delivered: %s", s->topic,
                     (int)m->partition, rd_kafka_err2str(m->err));
    return;
  }
  if (m->err) {
    s->delivery_errors++;
    char where[160];
    snprintf(where, sizeof where, "%s [%d]", s->topic, (int)m->partition);
    set_failure(s, "a record could not be delivered to %s: %s", where, rd_kafka_err2str(m->err));
    return;
  }
  uint64_t seq = (uint64_t)(uintptr_t)m->_private - 1;
  uint32_t k = s->span[seq & s->mask];
  for (uint32_t i = 0; i < k; i++) s->done[(seq + i) & s->mask] = 1;
  s->delivered += k;
  s->messages_delivered++;
  while (s->ack_seq < s->next_seq && s->done[s->ack_seq & s->mask]) {
    s->done[s->ack_seq & s->mask] = 0;
    s->ack_seq++;
    s->to_ack++;
  }
}

static uint64_t inflight(const ksink *s) { return s->next_seq - s->ack_seq; }

/* The producer's queue has events: serve them all (delivery reports, logs,
 * errors), then tell the pipeline what got acknowledged. */
static void ks_wake(void *ud) {
  ksink *s = ud;
  rd_kafka_t *rk = cs_kafka_rk(s->k);
  int rounds = 0;
  while (rounds < 64 && rd_kafka_poll(rk, 0) > 0) rounds++;
  if (rounds == 64) cs_kafka_rewake(s->k); /* more to serve: next loop turn */
  if (s->to_ack) {
    uint64_t n = s->to_ack;
    s->to_ack = 0;
    cs_sink_ack(s->sink, n);
  }
  if (s->failure && !s->stopped) {
    if (s->sink->on_fail) s->sink->on_fail(s->sink->ud, s->sink, s->failure);
    return;
  }
  if (s->busy && !s->stopped && inflight(s) <= (uint64_t)s->max_inflight / 2) cs_sink_ready(s->sink);
}

/* librdkafka's statistics (statistics.interval.ms), on the loop thread. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  ksink *s = cs_kafka_ud(opaque);
  cs_kafka_stats_parse(json, len, &s->stats);
  return 0; /* librdkafka frees json */
}

static void ks_error(void *ud, int fatal, rd_kafka_resp_err_t code, const char *reason) {
  ksink *s = ud;
  if (fatal) set_failure(s, "the Kafka producer failed: %s%s", reason, "");
}

/* ------------------------------------------------------------ producing */

/* Hands the n formatted messages (buf, offs, keys; with value = "raw",
 * counts: the records each stands for) to librdkafka, one by one and
 * stopping at the first refusal, so that order is kept. */
static cs_sink_status produce(ksink *s, size_t n, cs_err *err) {
  if (s->failure) {
    cs_err_set(err, "%s", s->failure);
    return CS_SINK_ERROR;
  }
  if (s->buf.oom) {
    s->buf.oom = 0;
    cs_err_set(err, "out of memory formatting %zu records", n);
    return CS_SINK_RETRY;
  }
  uint64_t records = 0;
  for (size_t i = 0; i < n; i++) records += s->raw ? s->counts[i] : 1;
  if (inflight(s) > 0 && inflight(s) + records > (uint64_t)s->max_inflight) {
    s->busy = 1;
    s->busy_answers++;
    s->queue_full_waits++;
    return CS_SINK_BUSY;
  }
  if (ring_reserve(s, records) != 0) {
    cs_err_set(err, "out of memory");
    return CS_SINK_RETRY;
  }
  int warned = 0;
  for (size_t i = 0; i < n; i++) {
    void *key = s->key_product ? (void *)s->keys[i] : NULL;
    size_t key_len = s->key_product ? s->key_lens[i] : 0;
    uint32_t k = s->raw ? s->counts[i] : 1;
    void *seq = (void *)(uintptr_t)(s->next_seq + 1);
    while (rd_kafka_produce(s->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, s->buf.data + s->offs[i],
                            s->offs[i + 1] - s->offs[i], key, key_len, seq) != 0) {
      rd_kafka_resp_err_t e = rd_kafka_last_error();
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && i == 0) { /* nothing taken: the pipeline waits */
        s->busy = 1;
        s->busy_answers++;
        s->queue_full_waits++;
        return CS_SINK_BUSY;
      }
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        set_failure(s, "producing to %s: %s", s->topic, rd_kafka_err2str(e));
        cs_err_set(err, "%s", s->failure);
        return CS_SINK_ERROR;
      }
      /* Part of the batch is taken and the rest must follow in order:
       * wait here for room (librdkafka's own queue is sized well above
       * max_inflight, so only a batch larger than that margin gets here). */
      s->queue_full_waits++;
      if (!warned++)
        cs_warn(s->sink->label, "librdkafka's queue is full in the middle of a batch of %zu records: waiting", n);
      rd_kafka_poll(cs_kafka_rk(s->k), 50);
    }
    s->span[s->next_seq & s->mask] = k;
    s->next_seq += k;
    s->produced += k;
    s->messages++;
  }
  s->busy = 0;
  return CS_SINK_OK;
}

static int reserve(ksink *s, size_t n) {
  if (n + 1 <= s->cap) return 0;
  size_t nc = s->cap ? s->cap : 256;
  while (nc < n + 1) nc *= 2;
  size_t *no = realloc(s->offs, nc * sizeof *no);
  if (!no) return -1;
  s->offs = no;
  const char **nk = realloc(s->keys, nc * sizeof *nk);
  if (!nk) return -1;
  s->keys = nk;
  size_t *nl = realloc(s->key_lens, nc * sizeof *nl);
  if (!nl) return -1;
  s->key_lens = nl;
  uint32_t *nn = realloc(s->counts, nc * sizeof *nn);
  if (!nn) return -1;
  s->counts = nn;
  s->cap = nc;
  return 0;
}

/* value = "raw": one message per frame, the frame as received, keyed by
 * its first trade's product; the frame's other trades ride with it. */
static cs_sink_status write_frames(ksink *s, const cs_trade *trades, size_t n, cs_err *err) {
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    const cs_trade *t = &trades[i];
    if (!t->frame || t->frame_trades < 1 || t->frame_trades > n - i) {
      cs_err_set(err, "value = \"raw\": trade %.*s #%lld came without its exchange frame (the pipeline must hand "
                      "frames over; this is a bug)",
                 (int)t->product_len, t->product_id, (long long)t->trade_id);
      return CS_SINK_ERROR;
    }
    s->offs[m] = s->buf.len;
    cs_buf_append(&s->buf, t->frame, t->frame_len);
    s->keys[m] = t->product_id;
    s->key_lens[m] = t->product_len;
    s->counts[m] = t->frame_trades;
    m++;
    i += t->frame_trades;
  }
  s->offs[m] = s->buf.len;
  cs_sink_status st = produce(s, m, err);
  if (st == CS_SINK_OK) s->raw_frames += m;
  return st;
}

static cs_sink_status ks_write_trades(cs_sink *sink, const cs_trade *trades, size_t n, cs_err *err) {
  ksink *s = sink->ctx;
  if (reserve(s, n) != 0) {
    cs_err_set(err, "out of memory");
    return CS_SINK_RETRY;
  }
  cs_buf_reset(&s->buf);
  if (s->raw) return write_frames(s, trades, n, err);
  for (size_t i = 0; i < n; i++) {
    s->offs[i] = s->buf.len;
    cs_trade_to_json(&trades[i], &s->buf);
    s->keys[i] = trades[i].product_id;
    s->key_lens[i] = trades[i].product_len;
  }
  s->offs[n] = s->buf.len;
  return produce(s, n, err);
}

static cs_sink_status ks_write(cs_sink *sink, const cs_row *rows, size_t n, cs_err *err) {
  ksink *s = sink->ctx;
  if (s->raw) {
    cs_err_set(err, "option 'value' = \"raw\" forwards exchange frames: it takes trades, not window rows");
    return CS_SINK_ERROR;
  }
  if (reserve(s, n) != 0) {
    cs_err_set(err, "out of memory");
    return CS_SINK_RETRY;
  }
  cs_buf_reset(&s->buf);
  for (size_t i = 0; i < n; i++) {
    s->offs[i] = s->buf.len;
    cs_row_to_json(&rows[i], &s->buf);
    s->keys[i] = rows[i].product_id;
    s->key_lens[i] = strlen(rows[i].product_id);
  }
  s->offs[n] = s->buf.len;
  return produce(s, n, err);
}

static cs_sink_status ks_flush(cs_sink *sink, cs_err *err) {
  ksink *s = sink->ctx;
  if (s->failure) {
    cs_err_set(err, "%s", s->failure);
    return CS_SINK_ERROR;
  }
  /* Acknowledgements still to come: the pipeline looks again soon. */
  return inflight(s) ? CS_SINK_RETRY : CS_SINK_OK;
}

/* ---------------------------------------------------------------- clock */

/* The partition count, looked up on libuv's thread pool (rd_kafka_metadata
 * blocks; it is thread-safe). */
static void md_run(uv_work_t *w) {
  ksink *s = w->data;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(cs_kafka_rk(s->k), 0, s->rkt, &md, 2000);
  s->md_result = -1;
  s->md_error[0] = 0;
  if (e) {
    snprintf(s->md_error, sizeof s->md_error, "%s", rd_kafka_err2str(e));
  } else if (md->topic_cnt == 1 && !md->topics[0].err) {
    s->md_result = md->topics[0].partition_cnt;
  } else if (md->topic_cnt == 1) {
    snprintf(s->md_error, sizeof s->md_error, "%s", rd_kafka_err2str(md->topics[0].err));
  }
  if (md) rd_kafka_metadata_destroy(md);
}

static void md_done(uv_work_t *w, int status) {
  ksink *s = w->data;
  s->md_running = 0;
  if (s->md_result > 0) {
    if (s->npart && s->npart != s->md_result)
      cs_info(s->sink->label, "topic %s now has %d partitions", s->topic, (int)s->md_result);
    s->npart = s->md_result;
  } else if (s->md_error[0]) {
    cs_log_limited(&s->lim, CS_LOG_WARN, s->sink->label, "partitions of %s unknown (no clock records yet): %s",
                   s->topic, s->md_error);
  }
}

static void on_clock(uv_timer_t *t) {
  ksink *s = t->data;
  if (s->stopped || s->failure) return;
  int64_t mono = cs_time_mono_us();
  if (!s->md_running && (!s->npart || mono - s->npart_at > PARTITIONS_REFRESH_US)) {
    s->npart_at = mono;
    s->md_running = 1;
    s->md_work.data = s;
    if (uv_queue_work(s->loop, &s->md_work, md_run, md_done) != 0) s->md_running = 0;
  }
  int64_t now;
  /* Not while records wait for this sink: the clock would overtake them. */
  if (!s->npart || s->busy || !cs_sink_feed_clock(s->sink, &now) || now == s->last_clock_us) return;
  char v[64], ts[28];
  cs_kafka_time_us(now, ts);
  int len = snprintf(v, sizeof v, "{\"v\":1,\"type\":\"clock\",\"time\":\"%s\"}", ts);
  for (int32_t p = 0; p < s->npart; p++) {
    if (rd_kafka_produce(s->rkt, p, RD_KAFKA_MSG_F_COPY, v, (size_t)len, NULL, 0, NULL) != 0) {
      cs_log_limited(&s->lim, CS_LOG_WARN, s->sink->label, "clock record to %s [%d]: %s", s->topic, (int)p,
                     rd_kafka_err2str(rd_kafka_last_error()));
      return;
    }
    s->clocks++;
  }
  s->last_clock_us = now;
}

/* ------------------------------------------------------------ life cycle */

static int ks_start(cs_sink *sink, uv_loop_t *loop, cs_err *err) {
  ksink *s = sink->ctx;
  char num[32];
  s->loop = loop;
  if (strcmp(s->brokers, CS_KAFKA_EMBEDDED) == 0 && cs_kafka_embedded_topic(s->topic, s->partitions, err) != 0)
    return -1;
  rd_kafka_conf_t *conf = cs_kafka_conf(s->brokers, err);
  if (!conf) return -1;
  int rc = cs_kafka_set(conf, "enable.idempotence", "true", err) ||
           cs_kafka_set(conf, "compression.codec", s->compression, err);
  snprintf(num, sizeof num, "%.3f", (double)s->linger_us / 1000.0);
  rc = rc || cs_kafka_set(conf, "linger.ms", num, err);
  snprintf(num, sizeof num, "%lld", (long long)s->batch);
  rc = rc || cs_kafka_set(conf, "batch.num.messages", num, err);
  snprintf(num, sizeof num, "%lld", (long long)(s->delivery_timeout_us / 1000));
  rc = rc || cs_kafka_set(conf, "message.timeout.ms", num, err);
  /* For /metrics: request retries and librdkafka's queue, once a second. */
  rc = rc || cs_kafka_set(conf, "statistics.interval.ms", "1000", err);
  /* librdkafka's own bound stays well above max_inflight: the sink's
   * bound is the one that answers. */
  long long qmax = s->max_inflight * 2 + 100000;
  if (qmax > 10000000) qmax = 10000000;
  snprintf(num, sizeof num, "%lld", qmax);
  rc = rc || cs_kafka_set(conf, "queue.buffering.max.messages", num, err) ||
       cs_kafka_set(conf, "queue.buffering.max.kbytes", "2097151", err);
  /* Extra properties last: they may change any of the above. */
  if (!rc) rc = cs_kafka_set_props(conf, s->config, s->nconfig, "option 'config'", err);
  if (rc) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  rd_kafka_conf_set_stats_cb(conf, stats_cb);
  cs_kafka_cbs cbs = {s, ks_wake, ks_error};
  if (!(s->k = cs_kafka_create(loop, RD_KAFKA_PRODUCER, conf, sink->label, &cbs, err))) return -1;
  if (!(s->rkt = rd_kafka_topic_new(cs_kafka_rk(s->k), s->topic, NULL)))
    return cs_err_set(err, "topic %s: %s", s->topic, rd_kafka_err2str(rd_kafka_last_error()));
  if (sink->trades && s->clock_us > 0) {
    uv_timer_init(loop, &s->clock);
    s->clock.data = s;
    s->clock_open = 1;
    uint64_t ms = (uint64_t)(s->clock_us / 1000);
    uv_timer_start(&s->clock, on_clock, ms ? ms : 1, ms ? ms : 1);
  }
  cs_info(sink->label, "producing to %s on %s (%s)", s->topic, s->brokers,
          !sink->trades ? "window rows" : s->raw ? "exchange frames as received" : "trade records");
  return 0;
}

static void ks_stop(cs_sink *sink) {
  ksink *s = sink->ctx;
  if (s->stopped) return;
  s->stopped = 1;
  if (s->clock_open) {
    uv_timer_stop(&s->clock);
    uv_close((uv_handle_t *)&s->clock, NULL);
    s->clock_open = 0;
  }
  if (s->k) {
    /* Reports that came in meanwhile. */
    while (rd_kafka_poll(cs_kafka_rk(s->k), 0) > 0) {
    }
    if (s->to_ack) {
      cs_sink_ack(sink, s->to_ack);
      s->to_ack = 0;
    }
    cs_kafka_close(s->k);
  }
  cs_info(sink->label,
          "%llu records produced in %llu messages, %llu confirmed, %llu clock records, %llu waits for room, %llu "
          "request retries%s",
          (unsigned long long)s->produced, (unsigned long long)s->messages, (unsigned long long)s->delivered,
          (unsigned long long)s->clocks, (unsigned long long)s->queue_full_waits,
          (unsigned long long)s->stats.txretries, inflight(s) ? " (some not confirmed)" : "");
}

static void ks_destroy(cs_sink *sink) {
  ksink *s = sink->ctx;
  if (!s) return;
  if (s->k && inflight(s))
    cs_warn(sink->label, "%llu records were not confirmed by the broker", (unsigned long long)inflight(s));
  if (s->k) rd_kafka_purge(cs_kafka_rk(s->k), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  if (s->rkt) rd_kafka_topic_destroy(s->rkt);
  cs_kafka_destroy(s->k);
  ks_free(s);
}

static void ks_metrics(const cs_sink *sink, cs_metrics_page *pg, const char *labels) {
  const ksink *s = sink->ctx;
#define C(name, help, v) cs_metrics_counter(pg, "cstream_kafka_sink_" name, help, labels, (double)(v))
#define G(name, help, v) cs_metrics_gauge(pg, "cstream_kafka_sink_" name, help, labels, (double)(v))
  C("messages_total", "Messages handed to librdkafka (trade records, window rows or raw frames; not clock records)",
    s->messages);
  C("records_total", "Records those messages stand for (a raw frame stands for each of its trades)", s->produced);
  C("delivered_messages_total", "Messages the broker confirmed (delivery reports)", s->messages_delivered);
  C("delivered_records_total", "Records the broker confirmed", s->delivered);
  C("delivery_errors_total", "Messages whose delivery failed (each stops the pipeline)", s->delivery_errors);
  C("clock_records_total", "Clock records written (one per partition each time)", s->clocks);
  C("clock_errors_total", "Clock records that could not be delivered (logged; the next one follows)",
    s->clock_errors);
  C("request_retries_total", "Requests librdkafka retried (all brokers; idempotent: no duplicates)",
    s->stats.txretries);
  C("request_errors_total", "Transmission errors librdkafka met (all brokers)", s->stats.txerrs);
  C("queue_full_waits_total",
    "Times the sink made the pipeline wait for room (max_inflight reached, or librdkafka's queue full)",
    s->queue_full_waits);
  G("inflight_records", "Records produced and not yet confirmed", s->next_seq - s->ack_seq);
  G("inflight_messages", "Messages produced and not yet confirmed or failed",
    s->messages - s->messages_delivered - s->delivery_errors);
  G("librdkafka_queue_messages", "Messages in librdkafka's queues (statistics, once a second)", s->stats.msg_cnt);
#undef C
#undef G
}

static const cs_optdef kafka_options[] = {
    {"brokers", CS_OPT_STRING, NULL, 0, NULL,
     "bootstrap brokers \"host:port,...\", or \"embedded\" (an in-process broker, in memory: development and tests)"},
    {"topic", CS_OPT_STRING, NULL, 0, NULL, "topic to write to"},
    {"key", CS_OPT_ENUM, "product_id", 0, "product_id|none",
     "message key: product_id keeps each product's records in order in one partition"},
    {"value", CS_OPT_ENUM, "record", 0, "record|raw",
     "trades: record (cstream's trade record) or raw (the exchange frame as received, once per frame; needs a "
     "source of frames, no window, no Lua hooks)"},
    {"partitions", CS_OPT_INTEGER, "4", 0, NULL, "partitions of the topic when the embedded broker creates it"},
    {"compression", CS_OPT_ENUM, "lz4", 0, "none|gzip|snappy|lz4|zstd", "compression of message batches"},
    {"linger", CS_OPT_DURATION, "5ms", 0, NULL, "how long a batch waits for more messages before it is sent"},
    {"batch", CS_OPT_INTEGER, "10000", 0, NULL, "messages per batch at most"},
    {"max_inflight", CS_OPT_INTEGER, "100000", 0, NULL,
     "records produced but not yet confirmed, at most; beyond it the pipeline waits"},
    {"delivery_timeout", CS_OPT_DURATION, "0", 0, NULL,
     "a record not delivered in this time stops the pipeline; 0: retry until delivered"},
    {"clock", CS_OPT_DURATION, "1s", 0, NULL,
     "trades: write the feed's clock to every partition this often (quiet markets); 0: never"},
    {"config", CS_OPT_STRINGS, NULL, 1, NULL, "extra librdkafka properties, \"key=value\" (applied last)"},
    {NULL, 0, NULL, 0, NULL, NULL}};

const cs_sink_vt cs_sink_kafka = {
    .name = "kafka",
    .help = "writes trades (trade records) or window rows as Kafka messages keyed by product",
    .options = kafka_options,
    .init = ks_init,
    .start = ks_start,
    .write = ks_write,
    .write_trades = ks_write_trades,
    .flush = ks_flush,
    .stop = ks_stop,
    .destroy = ks_destroy,
    .async_ack = 1,
    .metrics = ks_metrics,
};
