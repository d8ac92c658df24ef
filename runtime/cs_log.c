#include "cs_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static cs_log_level g_level = CS_LOG_INFO;
static const char *const g_names[] = {"debug", "info", "warn", "error"};

void cs_log_set_level(cs_log_level level) { g_level = level; }
cs_log_level cs_log_get_level(void) { return g_level; }

int cs_log_parse_level(const char *s, cs_log_level *out) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, g_names[i]) == 0) {
      *out = (cs_log_level)i;
      return 0;
    }
  return -1;
}

static void vlog(cs_log_level level, const char *component, const char *fmt, va_list ap) {
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  /* One fprintf per line: stderr is unbuffered, so a line is one write. */
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
          tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, g_names[level],
          component ? component : "cstream", msg);
}

void cs_log(cs_log_level level, const char *component, const char *fmt, ...) {
  if (level < g_level) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, component, fmt, ap);
  va_end(ap);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cs_log_limited(cs_log_limiter *lim, cs_log_level level, const char *component, const char *fmt, ...) {
  if (level < g_level) return;
  int64_t now = now_ms();
  if (lim->printed >= lim->burst && now - lim->last_ms < 1000) {
    lim->suppressed++;
    return;
  }
  if (lim->suppressed) {
    cs_log(level, component, "(%llu similar messages suppressed)", (unsigned long long)lim->suppressed);
    lim->suppressed = 0;
  }
  lim->printed++;
  lim->last_ms = now;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, component, fmt, ap);
  va_end(ap);
}

void cs_log_limiter_flush(cs_log_limiter *lim, cs_log_level level, const char *component, const char *what) {
  if (lim->suppressed && level >= g_level)
    cs_log(level, component, "(%llu more %s not shown)", (unsigned long long)lim->suppressed, what);
  lim->suppressed = 0;
}
