/* cs.replay: replays a recorded feed, one raw message per line, from a
 * .jsonl or .jsonl.gz file (or "-" for standard input).
 *
 * `rate` only paces delivery (0: as fast as possible; 1: real time; N: N
 * times faster), using each line's "time" member; the windows are the same
 * at every rate because on a replay only accepted trades move the watermark.
 * Runs on the loop: an idle handle delivers a batch of lines per loop turn
 * so signals and timers stay responsive; a timer waits when pacing. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "cs_lines.h"
#include "cs_log.h"
#include "cs_plugin.h"
#include "cs_time.h"

#define BATCH 2048

typedef struct replay {
  char *path;
  double rate;
  size_t max_line;
  cs_lines *lines;
  uv_idle_t idle;
  uv_timer_t timer;
  int paused, stopped, waiting, ended;
  int64_t t0_event, t0_wall; /* pacing origin */
  /* A line read but not yet due: it stays in the reader's buffer, untouched
   * until the next cs_lines_next, and is delivered when the timer fires. */
  int have_pending;
  const char *pending;
  size_t pending_len;
  uint64_t pending_lineno;
} replay;

static cs_source *of_idle(uv_idle_t *h) { return h->data; }

static int replay_init(cs_source *src, const cs_opts *opts, cs_err *err) {
  replay *r = calloc(1, sizeof *r);
  if (!r) return cs_err_set(err, "out of memory");
  r->path = strdup(cs_opts_str(opts, "path"));
  r->rate = cs_opts_num(opts, "rate");
  int64_t ml = cs_opts_int(opts, "max_line");
  if (!r->path) {
    free(r);
    return cs_err_set(err, "out of memory");
  }
  if (r->rate < 0) {
    free(r->path);
    free(r);
    return cs_err_set(err, "option 'rate': must be >= 0");
  }
  if (ml < 1024) {
    free(r->path);
    free(r);
    return cs_err_set(err, "option 'max_line': must be at least 1024 bytes");
  }
  r->max_line = (size_t)ml;
  src->ctx = r;
  return 0;
}

/* Event time of a raw line for pacing: the first "time" (Exchange) or
 * "timestamp" (Advanced Trade) string member. Cheap: no JSON parse. */
static int line_time(const char *line, size_t len, int64_t *t) {
  static const char *const keys[] = {"\"time\":\"", "\"timestamp\":\""};
  for (int k = 0; k < 2; k++) {
    size_t kl = strlen(keys[k]);
    for (const char *p = line; (p = memmem(p, len - (size_t)(p - line), keys[k], kl)) != NULL; p += kl) {
      const char *v = p + kl;
      const char *e = memchr(v, '"', len - (size_t)(v - line));
      const char *why;
      if (e && cs_time_parse_rfc3339(v, (size_t)(e - v), t, &why) == 0) return 0;
      break;
    }
  }
  return -1;
}

static void finish(cs_source *src) {
  replay *r = src->ctx;
  if (r->ended) return;
  r->ended = 1;
  uv_idle_stop(&r->idle);
  uv_timer_stop(&r->timer);
  src->on_end(src->ud);
}

static void on_timer(uv_timer_t *h);

/* Delivers up to BATCH lines; returns when paused, waiting or at the end. */
static void pump(cs_source *src) {
  replay *r = src->ctx;
  cs_err err;
  if (r->have_pending && !r->paused && !r->stopped) {
    r->have_pending = 0;
    src->on_line(src->ud, r->pending, r->pending_len, 1, r->pending_lineno, NULL);
  }
  for (int i = 0; i < BATCH && !r->paused && !r->stopped && !r->ended; i++) {
    const char *line;
    size_t len;
    uint64_t lineno;
    cs_lines_result res = cs_lines_next(r->lines, &line, &len, &lineno, &err);
    if (res == CS_LINES_EOF) {
      finish(src);
      return;
    }
    if (res == CS_LINES_ERROR) {
      /* A truncated or corrupt file: what was read stays good; say where
       * the input broke off and end the replay there. */
      uint64_t last = cs_lines_count(r->lines);
      cs_warn(src->label, "%s: input ends early after line %llu: %s", r->path, (unsigned long long)last, err.msg);
      src->on_line(src->ud, NULL, 0, 0, last + 1, "unreadable input (truncated or corrupt file)");
      finish(src);
      return;
    }
    if (res == CS_LINES_TOO_LONG) {
      char why[96];
      snprintf(why, sizeof why, "line of %zu bytes is longer than max_line (%zu)", len, r->max_line);
      src->on_line(src->ud, NULL, len, 0, lineno, why);
      continue;
    }
    if (r->rate > 0) {
      int64_t t;
      if (line_time(line, len, &t) == 0) {
        int64_t now = cs_time_mono_us();
        if (!r->t0_wall) {
          r->t0_wall = now;
          r->t0_event = t;
        }
        int64_t due = r->t0_wall + (int64_t)((double)(t - r->t0_event) / r->rate);
        if (due > now + 1000) {
          r->have_pending = 1;
          r->pending = line;
          r->pending_len = len;
          r->pending_lineno = lineno;
          r->waiting = 1;
          uv_idle_stop(&r->idle);
          uv_timer_start(&r->timer, on_timer, (uint64_t)((due - now + 999) / 1000), 0);
          return;
        }
      }
    }
    src->on_line(src->ud, line, len, 1, lineno, NULL);
  }
}

static void on_idle(uv_idle_t *h) { pump(of_idle(h)); }

static void on_timer(uv_timer_t *h) {
  cs_source *src = h->data;
  replay *r = src->ctx;
  r->waiting = 0;
  if (!r->paused && !r->stopped) uv_idle_start(&r->idle, on_idle);
}

static int replay_start(cs_source *src, uv_loop_t *loop, cs_err *err) {
  replay *r = src->ctx;
  if (!(r->lines = cs_lines_open(r->path, r->max_line, err))) return -1;
  uv_idle_init(loop, &r->idle);
  uv_timer_init(loop, &r->timer);
  r->idle.data = r->timer.data = src;
  uv_idle_start(&r->idle, on_idle);
  return 0;
}

static void replay_pause(cs_source *src) {
  replay *r = src->ctx;
  r->paused = 1;
  uv_idle_stop(&r->idle);
}

static void replay_resume(cs_source *src) {
  replay *r = src->ctx;
  r->paused = 0;
  if (!r->stopped && !r->waiting && !r->ended) uv_idle_start(&r->idle, on_idle);
}

static void replay_stop(cs_source *src) {
  replay *r = src->ctx;
  if (r->stopped) return;
  r->stopped = 1;
  if (r->lines) {
    uv_close((uv_handle_t *)&r->idle, NULL);
    uv_close((uv_handle_t *)&r->timer, NULL);
  }
}

static void replay_destroy(cs_source *src) {
  replay *r = src->ctx;
  if (!r) return;
  cs_lines_close(r->lines);
  free(r->path);
  free(r);
}

static int replay_progress(const cs_source *src, uint64_t *done, uint64_t *total) {
  const replay *r = src->ctx;
  if (!r->lines) return -1;
  *done = cs_lines_offset(r->lines);
  *total = cs_lines_size(r->lines);
  if (*total && *done > *total) *done = *total;
  return 0;
}

static const cs_optdef replay_options[] = {
    {"path", CS_OPT_STRING, NULL, 0, NULL, "capture file (.jsonl or .jsonl.gz, one raw message per line); \"-\" is stdin"},
    {"rate", CS_OPT_NUMBER, "0", 0, NULL, "pacing: 0 as fast as possible, 1 real time, N times faster"},
    {"max_line", CS_OPT_INTEGER, "16777216", 0, NULL, "longest line accepted, bytes; longer lines are counted invalid"},
    {NULL, 0, NULL, 0, NULL, NULL}};

const cs_source_vt cs_source_replay = {
    .name = "replay",
    .help = "replays a recorded feed (.jsonl / .jsonl.gz)",
    .options = replay_options,
    .init = replay_init,
    .start = replay_start,
    .pause = replay_pause,
    .resume = replay_resume,
    .stop = replay_stop,
    .destroy = replay_destroy,
    .progress = replay_progress,
    .frames = 1,
};
