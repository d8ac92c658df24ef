/* cs_status: the progress line and the live status line (see cs_status.h). */
#include "cs_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_log.h"
#include "cs_time.h"

#define TICK_MS 250

typedef struct track {
  uint64_t trades, bytes; /* at the previous tick */
  double trades_rate, bytes_rate;
  int64_t last_status_us; /* live: when the last status line was logged */
  uint64_t status_trades;
} track;

struct cs_status {
  uv_timer_t timer;
  cs_pipeline *const *pipes;
  size_t n;
  int progress;
  int64_t interval_us, last_tick_us;
  track *tr;
};

static void fmt_bytes(char *buf, size_t size, double b) {
  if (b >= 1e9)
    snprintf(buf, size, "%.2f GB", b / 1e9);
  else if (b >= 1e6)
    snprintf(buf, size, "%.1f MB", b / 1e6);
  else
    snprintf(buf, size, "%.0f kB", b / 1e3);
}

static void fmt_rate(char *buf, size_t size, double r) {
  if (r >= 1e6)
    snprintf(buf, size, "%.2f M", r / 1e6);
  else if (r >= 1e3)
    snprintf(buf, size, "%.1f k", r / 1e3);
  else
    snprintf(buf, size, "%.0f", r);
}

void cs_status_format_progress(char *buf, size_t size, uint64_t done, uint64_t total, double trades_per_s,
                               double bytes_per_s) {
  char d[32], t[32], r[32], eta[32] = "";
  fmt_bytes(d, sizeof d, (double)done);
  fmt_rate(r, sizeof r, trades_per_s);
  if (total) {
    fmt_bytes(t, sizeof t, (double)total);
    if (bytes_per_s > 0 && total > done) {
      uint64_t s = (uint64_t)((double)(total - done) / bytes_per_s + 0.5);
      if (s >= 3600)
        snprintf(eta, sizeof eta, " ETA %llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
      else
        snprintf(eta, sizeof eta, " ETA %llu:%02llu", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
    }
    snprintf(buf, size, "%.1f%% %s/%s %s trades/s%s", 100.0 * (double)done / (double)total, d, t, r, eta);
  } else {
    snprintf(buf, size, "%s read %s trades/s", d, r);
  }
}

static void live_status(cs_status *st, size_t i, int64_t now) {
  cs_pipeline *p = st->pipes[i];
  track *tr = &st->tr[i];
  const cs_pipeline_stats *s = cs_pipeline_get_stats(p);
  cs_pipeline_status ps;
  cs_pipeline_get_status(p, &ps);
  if (!ps.running) return;
  double dt = (double)(now - tr->last_status_us) / 1e6;
  double rate = dt > 0 ? (double)(s->trades - tr->status_trades) / dt : 0;
  tr->last_status_us = now;
  tr->status_trades = s->trades;
  int64_t wall = cs_time_wall_us();
  char lag[48] = "", age[48] = "";
  if (ps.has_watermark) snprintf(lag, sizeof lag, ", watermark lag %.1f s", (double)(wall - ps.watermark_us) / 1e6);
  if (ps.last_trade_us != INT64_MIN)
    snprintf(age, sizeof age, ", last trade %.1f s ago", (double)(wall - ps.last_trade_us) / 1e6);
  char label[128];
  snprintf(label, sizeof label, "pipeline %s", cs_pipeline_name(p));
  cs_info(label,
          "status: %s, %llu trades (%.1f/s), %llu windows%s%s, %llu gaps (%llu missing), %llu invalid, "
          "%llu reconnects%s",
          ps.connected ? "connected" : "NOT connected", (unsigned long long)s->trades, rate,
          (unsigned long long)s->windows, lag, age, (unsigned long long)s->gaps, (unsigned long long)s->missing_trades,
          (unsigned long long)s->invalid, (unsigned long long)ps.reconnects, ps.queued ? ", sink retrying" : "");
}

static void on_tick(uv_timer_t *t) {
  cs_status *st = t->data;
  int64_t now = cs_time_mono_us();
  double dt = (double)(now - st->last_tick_us) / 1e6;
  st->last_tick_us = now;
  char line[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < st->n; i++) {
    cs_pipeline *p = st->pipes[i];
    track *tr = &st->tr[i];
    const cs_pipeline_stats *s = cs_pipeline_get_stats(p);
    cs_pipeline_status ps;
    cs_pipeline_get_status(p, &ps);
    if (ps.live) {
      if (st->interval_us > 0 && now - tr->last_status_us >= st->interval_us) live_status(st, i, now);
      continue;
    }
    if (!st->progress || !ps.has_progress || !ps.running) continue;
    /* Rates smoothed over about a second. */
    double tr_now = dt > 0 ? (double)(s->trades - tr->trades) / dt : 0;
    double by_now = dt > 0 ? (double)(ps.done_bytes - tr->bytes) / dt : 0;
    tr->trades_rate = tr->trades_rate ? 0.7 * tr->trades_rate + 0.3 * tr_now : tr_now;
    tr->bytes_rate = tr->bytes_rate ? 0.7 * tr->bytes_rate + 0.3 * by_now : by_now;
    tr->trades = s->trades;
    tr->bytes = ps.done_bytes;
    char part[160];
    cs_status_format_progress(part, sizeof part, ps.done_bytes, ps.total_bytes, tr->trades_rate, tr->bytes_rate);
    int w = snprintf(line + used, sizeof line - used, "%sreplay %s %s", used ? " | " : "", cs_pipeline_name(p), part);
    if (w > 0) used = used + (size_t)w < sizeof line ? used + (size_t)w : sizeof line - 1;
  }
  cs_log_status(used ? line : NULL);
}

cs_status *cs_status_start(uv_loop_t *loop, cs_pipeline *const *pipes, size_t n, int progress,
                           int64_t live_interval_us) {
  if (!progress && live_interval_us <= 0) return NULL;
  cs_status *st = calloc(1, sizeof *st);
  if (!st || !(st->tr = calloc(n ? n : 1, sizeof *st->tr))) {
    free(st);
    return NULL;
  }
  st->pipes = pipes;
  st->n = n;
  st->progress = progress;
  st->interval_us = live_interval_us;
  st->last_tick_us = cs_time_mono_us();
  for (size_t i = 0; i < n; i++) st->tr[i].last_status_us = st->last_tick_us;
  uv_timer_init(loop, &st->timer);
  st->timer.data = st;
  uv_timer_start(&st->timer, on_tick, TICK_MS, TICK_MS);
  uv_unref((uv_handle_t *)&st->timer); /* never what keeps the loop running */
  return st;
}

static void on_closed(uv_handle_t *h) {
  cs_status *st = h->data;
  free(st->tr);
  free(st);
}

void cs_status_stop(cs_status *st) {
  if (!st) return;
  cs_log_status(NULL);
  uv_timer_stop(&st->timer);
  uv_close((uv_handle_t *)&st->timer, on_closed);
}
