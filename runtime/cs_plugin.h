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
 *   CS_SINK_ERROR  permanent failure: the pipeline stops with err's message.
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
struct cs_msg_info; /* cs_parse.h */
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
  /* Set by the pipeline before start. */
  void *ud;
  /* One message. `padded`: CS_JSON_PADDING readable bytes follow it.
   * `reject`: non-NULL when the source itself found the line unusable
   * (too long), with the reason; the line then holds no content. */
  void (*on_line)(void *ud, const char *line, size_t len, int padded, uint64_t lineno, const char *reject);
  void (*on_end)(void *ud);                   /* a finite input has ended */
  void (*on_fail)(void *ud, const char *why); /* the source cannot go on */
};

typedef enum { CS_SINK_OK = 0, CS_SINK_RETRY = 1, CS_SINK_ERROR = -1 } cs_sink_status;

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
};

/* An asynchronous sink acknowledges its oldest n unacknowledged records. */
static inline void cs_sink_ack(cs_sink *sink, uint64_t n) {
  if (sink->on_ack) sink->on_ack(sink->ud, sink, n);
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
