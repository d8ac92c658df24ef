/* cs_status: what a person at a terminal sees while `cstream run` works.
 *
 * Finite sources (replays) get a progress line kept at the bottom of the
 * terminal and redrawn four times a second (cs_log_status): position in
 * the file, trades/s, ETA, one part per pipeline:
 *   replay btc-30s 41.7% 112.0/268.6 MB 2.31 M trades/s ETA 0:04
 * Live pipelines log a status line every `interval`:
 *   status: connected, 1234 trades (5.6/s), 40 windows, watermark lag 6.2 s, last trade 0.4 s ago, 0 gaps, 0 reconnects
 * The caller decides whether to show anything (stderr a terminal, log
 * level info or lower, --quiet not given); cs_status only draws.
 *
 * Reads the pipelines through cs_pipeline_get_stats/get_status; never
 * touches the hot path. Loop thread only. */
#ifndef CS_STATUS_H
#define CS_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cs_pipeline.h"

typedef struct cs_status cs_status;

/* Starts the timer on the loop. `pipes` (n of them) must outlive the
 * cs_status; progress: draw the progress line for finite sources;
 * live_interval_us > 0: log live pipelines' status that often. NULL when
 * there is nothing to show (or out of memory). */
cs_status *cs_status_start(uv_loop_t *loop, cs_pipeline *const *pipes, size_t n, int progress,
                           int64_t live_interval_us);
/* Erases the progress line and closes the timer; the memory is freed once
 * the loop has closed it. NULL is a no-op. */
void cs_status_stop(cs_status *st);

/* One progress part, for tests and the status line: writes e.g.
 * "41.7% 112.0/268.6 MB 2.31 M trades/s ETA 0:04" into buf. */
void cs_status_format_progress(char *buf, size_t size, uint64_t done, uint64_t total, double trades_per_s,
                               double bytes_per_s);

#endif
