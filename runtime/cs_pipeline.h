/* cs_pipeline: one running topology — source -> parse -> hooks -> window
 * engine -> sinks — on a libuv loop. Without a window, valid trades go
 * straight to the sinks (trade records).
 *
 * The pipeline owns its source, window engine and sinks. It counts every
 * line (trades, invalid, ignored, late, duplicates, filtered), logs every
 * drop (rate-limited), and holds the one retry policy for sinks: a sink
 * that answers RETRY keeps its rows queued here, the source is paused
 * (back-pressure) and the write is retried with exponential backoff and
 * jitter until it succeeds. Nothing is dropped silently.
 *
 * Trade ids are tracked per product for gaps (cs_gaps). With a live
 * source, event time also advances with the wall clock since the feed's
 * last message (its own clock: trade and heartbeat times), so a window
 * closes lateness + CS_PIPELINE_GRACE_US after its end with no further
 * trade, and trades stamped too far ahead of the wall clock are invalid.
 *
 * Ends when its finite source ends (every open window is emitted), on
 * cs_pipeline_interrupt (open windows are not emitted: they are incomplete;
 * their number is reported), or on a sink/source failure. Uses cs_parse,
 * cs_window, cs_plugin, cs_log. Loop thread only. */
#ifndef CS_PIPELINE_H
#define CS_PIPELINE_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "cs_err.h"
#include "cs_hist.h"
#include "cs_plugin.h"
#include "cs_record.h"
#include "cs_window.h"

/* Per-trade user hooks (the Lua layer implements them). Called only for
 * valid trades the window would accept (not late, not duplicate). Each
 * returns 1 to keep the trade, 0 to drop it (counted `filtered`), -1 when
 * the hook failed (counted `hook_errors`, logged, the trade dropped). */
typedef struct cs_hooks {
  void *ud;
  int (*filter)(void *ud, const cs_trade *trade);
  /* May rewrite *trade; strings it points to must stay valid until the
   * next call. */
  int (*map)(void *ud, cs_trade *trade);
} cs_hooks;

typedef struct cs_pipeline_stats {
  uint64_t lines, trades, windows, late, duplicates, invalid, ignored, filtered, hook_errors;
  uint64_t late_updates; /* late trades taken into an emitted window (on_late = update) */
  uint64_t gaps, missing_trades; /* trade-id gaps declared, ids they miss (cs_gaps.h) */
  uint64_t skewed;               /* trades ahead of the wall clock (counted invalid too) */
  cs_hist frame_to_window;       /* live sources: frame received -> trade in its window, µs */
  cs_hist exchange_to_window;    /* live sources: trade's exchange time -> in its window, µs */
  uint64_t rows_acked; /* records (rows or trades) the sinks acknowledged */
  uint64_t sink_retries;
  uint64_t open_windows; /* windows left open (not emitted) when interrupted */
  int64_t start_us, end_us;
} cs_pipeline_stats;

/* How far behind the feed's clock a live source's watermark stays, beyond
 * lateness: room for network delay. */
#define CS_PIPELINE_GRACE_US INT64_C(1000000)
/* Without a window, a missing id is declared a gap once the feed's clock
 * is this far past the trade that revealed it. */
#define CS_PIPELINE_GAP_SETTLE_US INT64_C(5000000)

typedef struct cs_pipeline cs_pipeline;
typedef void (*cs_pipeline_done_fn)(void *ud, cs_pipeline *p);

cs_pipeline *cs_pipeline_create(const char *name, cs_err *err);
/* Frees everything it owns; call after the loop has closed its handles
 * (after on_done and uv_run returned). NULL is a no-op. */
void cs_pipeline_destroy(cs_pipeline *p);

const char *cs_pipeline_name(const cs_pipeline *p);
/* Takes ownership of src / sink. */
void cs_pipeline_set_source(cs_pipeline *p, cs_source *src);
int cs_pipeline_add_sink(cs_pipeline *p, cs_sink *sink, cs_err *err);
/* The conf (and its ext) must outlive the pipeline. Without a call, the
 * pipeline has no window. */
int cs_pipeline_set_window(cs_pipeline *p, const cs_window_conf *conf, cs_err *err);
/* The hooks struct is copied; its ud must outlive the pipeline. */
void cs_pipeline_set_hooks(cs_pipeline *p, const cs_hooks *hooks);

/* Starts sinks, then the source. on_done is called once when it ends. */
int cs_pipeline_start(cs_pipeline *p, uv_loop_t *loop, cs_pipeline_done_fn on_done, void *ud, cs_err *err);
/* SIGINT/SIGTERM: stop intake, keep what was acknowledged, finish.
 * A second call gives up on rows still waiting for a sink (counted). */
void cs_pipeline_interrupt(cs_pipeline *p);

const cs_pipeline_stats *cs_pipeline_get_stats(const cs_pipeline *p);
/* Non-NULL when the pipeline failed: the reason. */
const char *cs_pipeline_failure(const cs_pipeline *p);
/* Moves the pipeline's event clock as a live source's clock does: as if
 * the feed's clock read feed_now_us now, the watermark goes to it minus
 * lateness minus CS_PIPELINE_GRACE_US, and what that closes is emitted and
 * delivered; gaps expire. The live timer calls it every 250 ms; `cstream
 * test` calls it for its virtual clock. */
void cs_pipeline_tick(cs_pipeline *p, int64_t feed_now_us);

/* Operations (cs_metrics.h, cs_status.h). An asynchronous sink holding
 * unacknowledged records with no acknowledgement for ack_timeout_us is
 * reported unhealthy (default CS_METRICS_DEFAULT_ACK_TIMEOUT_US). */
void cs_pipeline_set_ack_timeout(cs_pipeline *p, int64_t ack_timeout_us);
/* A cs_metrics collector and health function; ud is the pipeline. */
struct cs_metrics_page;
struct cs_metrics_health;
void cs_pipeline_collect(void *p, struct cs_metrics_page *pg);
void cs_pipeline_health(void *p, struct cs_metrics_health *hh);

/* A snapshot for the progress and status lines. */
typedef struct cs_pipeline_status {
  int running;        /* intake goes on (not draining, not done) */
  int live;           /* the source is live */
  int connected;      /* live: connected and subscribed */
  uint64_t reconnects;
  int has_progress;   /* a finite source told how far it has read */
  uint64_t done_bytes, total_bytes;
  int has_watermark;
  int64_t watermark_us;
  int64_t last_trade_us; /* newest trade time of any product; INT64_MIN when none */
  size_t open_windows;
  size_t queued;      /* records waiting in the pipeline for a sink's retry */
} cs_pipeline_status;
void cs_pipeline_get_status(const cs_pipeline *p, cs_pipeline_status *st);

/* The end-of-run summary, one line:
 * "summary pipeline=NAME lines=N trades=N windows=N ..." */
void cs_pipeline_print_summary(const cs_pipeline *p, FILE *out);

#endif
