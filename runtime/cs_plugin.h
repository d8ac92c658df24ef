/* cs_plugin: the two plugin interfaces — sources and sinks — and their
 * registry. A plugin is one file (runtime/sources/<name>.c, sinks/<name>.c)
 * that ends with its option table and its exported vtable.
 *
 * Life cycle, on the loop thread only:
 *   init(opts) -> start(loop) -> ... -> stop() -> [loop drains] -> destroy()
 * `stop` closes the plugin's libuv handles; `destroy` runs after the loop
 * has finished closing them and frees the rest.
 *
 * Sources push raw messages (one feed message = one line) to the pipeline
 * through the callbacks in cs_source. A source must honour pause/resume:
 * that is how back-pressure reaches it when a sink cannot keep up. A live
 * source that cannot pause counts and logs what it drops.
 *
 * Sinks receive emitted rows (a pipeline with a window) or trades (a
 * pipeline without one) in order. write() / write_trades() answer:
 *   CS_SINK_OK     the sink took every record (it is responsible for them
 *                  now). A synchronous sink has also acknowledged them; an
 *                  asynchronous one (vt->async_ack) acknowledges later, in
 *                  order, with cs_sink_ack once they are durable,
 *   CS_SINK_RETRY  it took none; the pipeline keeps them, pauses the source
 *                  and calls write() again with the same rows after a backoff,
 *   CS_SINK_ERROR  permanent failure: the pipeline stops with err's message,
 *   CS_SINK_BUSY   it took none because a local bound is reached (records
 *                  waiting for acknowledgement), which is not a failure:
 *                  the pipeline keeps them and pauses the source as for
 *                  RETRY, without counting or logging a retry, and writes
 *                  again when the sink calls cs_sink_ready (at the latest
 *                  after CS_SINK_BUSY_RECHECK_MS).
 * Retry policy lives in one place, the pipeline (cs_pipeline.c). */
#ifndef CS_PLUGIN_H
#define CS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cs_err.h"
#include "cs_option.h"
#include "cs_record.h"

typedef struct cs_source cs_source;
/* What the pipeline made of one line, for sources with their own event
 * clock (cs_source.external_clock); INT64_MIN / 0: nothing. */
typedef struct cs_line_result {
  int64_t wm_us;  /* the watermark the line vouches for: its newest accepted trade's time minus
                     lateness, or a clock record's ({"v":1,"type":"clock","time":...}) time minus
                     lateness and CS_PIPELINE_GRACE_US */
  int64_t end_us; /* the latest end of an open window the line's trades went into: the line is
                     durable once the durable watermark (cs_source.durable) reaches it */
  uint64_t seq;   /* ... and once every sink has acknowledged this many records (rows, or trades
                     without a window): set when the line's trades were emitted at once */
  int kind;       /* what the line was: CS_LINE_* */
} cs_line_result;
enum { CS_LINE_TRADES = 0, CS_LINE_INVALID = 1, CS_LINE_OTHER = 2, CS_LINE_CLOCK = 3 };
struct cs_msg_info; /* cs_parse.h */
struct cs_metrics_page; /* cs_metrics.h */
typedef struct cs_sink cs_sink;

typedef struct cs_source_vt {
  const char *name; /* the Lua constructor: cs.<name>{...} */
  const char *help;
  const cs_optdef *options;
  int (*init)(cs_source *src, const cs_opts *opts, cs_err *err);
  int (*start)(cs_source *src, uv_loop_t *loop, cs_err *err);
  void (*pause)(cs_source *src);
  void (*resume)(cs_source *src);
  void (*stop)(cs_source *src);
  void (*destroy)(cs_source *src); /* frees src->ctx */
  /* Optional: told about the feed's control messages (subscriptions,
   * error, heartbeat) after the pipeline has parsed them. */
  void (*on_message)(cs_source *src, const struct cs_msg_info *info);
  /* Optional: adds the plugin's own figures to a metrics page
   * (cs_metrics.h); `labels` holds the pipeline and source labels to give
   * every sample. Called at scrape time only. */
  void (*metrics)(const cs_source *src, struct cs_metrics_page *page, const char *labels);
  /* Optional, finite sources: how far the input has been read, for the
   * progress line and metrics; returns 0 and sets *done (bytes read) and
   * *total (the input's size, 0 when unknown, e.g. stdin), or -1. */
  int (*progress)(const cs_source *src, uint64_t *done, uint64_t *total);
  /* Optional: names the message being delivered, for log lines instead of
   * its line number ("trades [2] offset 1234"); returns 0, or -1. */
  int (*where)(const cs_source *src, char *buf, size_t size);
  /* 1: each line is an exchange frame exactly as received (cs.coinbase,
   * cs.replay of a capture), which a sink may forward (cs_sink.frames). */
  int frames;
} cs_source_vt;

struct cs_source {
  const cs_source_vt *vt;
  void *ctx;          /* the plugin's state */
  char label[96];     /* "source replay.btc-30s", for logs */
  /* Set by the plugin at init. A live source's event time also advances
   * with the wall clock (quiet markets still close windows), and a trade
   * stamped more than max_skew_us ahead of the wall clock is invalid. */
  int live;
  int64_t max_skew_us;
  /* Wall-clock time (µs) the source received the line it is delivering,
   * 0 when unknown (replays): trades carry it as recv_time. */
  int64_t recv_us;
  /* Optional: the wall clock (µs) as the source read it when it took the
   * batch of lines it is delivering, so that the pipeline does not read
   * the clock for each trade's latency figures; 0: the pipeline reads it. */
  int64_t now_us;
  /* Set by the pipeline before start. */
  void *ud;
  /* One message. `padded`: CS_JSON_PADDING readable bytes follow it.
   * `reject`: non-NULL when the source itself found the line unusable
   * (too long), with the reason; the line then holds no content. */
  void (*on_line)(void *ud, const char *line, size_t len, int padded, uint64_t lineno, const char *reject);
  void (*on_end)(void *ud);                   /* a finite input has ended */
  void (*on_fail)(void *ud, const char *why); /* the source cannot go on */
  /* Set by a live source, for /healthz and metrics: `connected` is 1 while
   * it is connected and subscribed (streaming), 0 otherwise; `reconnects`
   * counts connections lost and attempts failed (each followed by a
   * reconnection). Finite sources leave both 0. */
  int connected;
  uint64_t reconnects;
  /* A source with its own event clock (cs.kafka: several partitions, each
   * in order) sets external_clock at init. Trades then do not move the
   * watermark: after each line the source reads `result` and moves the
   * watermark itself with advance() (the minimum over its partitions).
   * Before each line it sets floor_us (INT64_MIN: none): trades of windows
   * ending at or before it are late (a restored durable watermark). Set by
   * the pipeline before start, for such sources:
   *   advance  moves the watermark to at least watermark_us, emits what
   *            that closes,
   *   reset    drops every open window without emitting it (partitions
   *            were revoked: their trades will be read again); the
   *            watermark starts afresh,
   *   durable  the durable watermark (every row emitted up to it is
   *            acknowledged by every sink; INT64_MIN: none yet) and the
   *            records every sink has acknowledged. */
  int external_clock;
  int64_t floor_us;
  cs_line_result result;
  void (*advance)(void *ud, int64_t watermark_us);
  void (*reset)(void *ud);
  void (*durable)(void *ud, int64_t *watermark_us, uint64_t *acked);
};

typedef enum { CS_SINK_OK = 0, CS_SINK_RETRY = 1, CS_SINK_BUSY = 2, CS_SINK_ERROR = -1 } cs_sink_status;
#define CS_SINK_BUSY_RECHECK_MS 1000

typedef struct cs_sink_vt {
  const char *name;
  const char *help;
  const cs_optdef *options;
  int (*init)(cs_sink *sink, const cs_opts *opts, cs_err *err);
  int (*start)(cs_sink *sink, uv_loop_t *loop, cs_err *err);
  /* The rows are the caller's: copy what is kept past the call. */
  cs_sink_status (*write)(cs_sink *sink, const cs_row *rows, size_t n, cs_err *err);
  /* Trades (NULL: the sink takes only window rows). Same rules; the trades
   * and their strings are the caller's. */
  cs_sink_status (*write_trades)(cs_sink *sink, const cs_trade *trades, size_t n, cs_err *err);
  /* Makes everything taken so far durable/visible; same answers. */
  cs_sink_status (*flush)(cs_sink *sink, cs_err *err);
  void (*stop)(cs_sink *sink);
  void (*destroy)(cs_sink *sink);
  /* 1: records taken with OK are acknowledged later through cs_sink_ack
   * (e.g. after an HTTP insert succeeded); flush() answers OK only when
   * everything taken has been acknowledged. 0: OK means acknowledged. */
  int async_ack;
  /* Optional: adds the sink's own figures (batches, retries, dead-letter
   * rows, queued bytes, ...) to a metrics page (cs_metrics.h); `labels`
   * holds the pipeline and sink labels. Called at scrape time only. */
  void (*metrics)(const cs_sink *sink, struct cs_metrics_page *page, const char *labels);
} cs_sink_vt;

struct cs_sink {
  const cs_sink_vt *vt;
  void *ctx;
  char label[96]; /* "sink jsonl.btc-30s" */
  /* Set by the pipeline: how acknowledgements reach it. */
  void *ud;
  void (*on_ack)(void *ud, cs_sink *sink, uint64_t n);
  /* An asynchronous sink that cannot go on (a permanent error found after
   * write returned OK) reports it here; the pipeline stops. */
  void (*on_fail)(void *ud, cs_sink *sink, const char *why);
  /* Set by the pipeline before start(): 1 when the sink will get trades
   * (write_trades; the pipeline has no window), 0 for window rows. */
  int trades;
  /* Set by the pipeline: a sink that answered CS_SINK_BUSY calls on_ready
   * (cs_sink_ready) once it can take records again. */
  void (*on_ready)(void *ud, cs_sink *sink);
  /* Set by the pipeline: the feed's clock now (cs_sink_feed_clock). */
  int (*feed_clock)(void *ud, int64_t *now_us);
  /* Set by the sink at init when it forwards each trade's exchange frame
   * (cs_trade.frame) instead of the trade: the option that asks for it,
   * for messages (`option 'value' = "raw"`); NULL otherwise. The pipeline
   * then refuses to start without a source of frames (cs_source_vt.frames),
   * with a window, or with Lua hooks (a frame cannot show what they did). */
  const char *frames;
};

/* An asynchronous sink acknowledges its oldest n unacknowledged records. */
static inline void cs_sink_ack(cs_sink *sink, uint64_t n) {
  if (sink->on_ack) sink->on_ack(sink->ud, sink, n);
}
/* A sink that answered CS_SINK_BUSY can take records again. */
static inline void cs_sink_ready(cs_sink *sink) {
  if (sink->on_ready) sink->on_ready(sink->ud, sink);
}
/* The feed's clock as the pipeline knows it — the newest time seen in the
 * input (trades and timestamped messages such as heartbeats), moving on
 * with the wall clock for a live source — for sinks that pass it on (the
 * Kafka sink's clock records). Returns 1 and sets *now_us, or 0 before the
 * input has told any time. */
static inline int cs_sink_feed_clock(cs_sink *sink, int64_t *now_us) {
  return sink->feed_clock ? sink->feed_clock(sink->ud, now_us) : 0;
}

/* Registry. Lookups return NULL for an unknown name. */
const cs_source_vt *cs_plugin_source(const char *name);
const cs_sink_vt *cs_plugin_sink(const char *name);
/* NULL-terminated lists, for `cstream check`, docs and the Lua layer. */
extern const cs_source_vt *const cs_plugin_sources[];
extern const cs_sink_vt *const cs_plugin_sinks[];
/* Options of cs.tumbling (the window engine). */
extern const cs_optdef cs_plugin_tumbling_options[];

/* Creates a plugin instance from validated options (init is called);
 * destroy(NULL) is a no-op. The opts are only read during the call. */
cs_source *cs_source_create(const cs_source_vt *vt, const char *instance, const cs_opts *opts, cs_err *err);
void cs_source_destroy(cs_source *src);
cs_sink *cs_sink_create(const cs_sink_vt *vt, const char *instance, const cs_opts *opts, cs_err *err);
void cs_sink_destroy(cs_sink *sink);

#endif
