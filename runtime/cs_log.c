#include "cs_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static cs_log_level g_level = CS_LOG_INFO;
static const char *const g_names[] = {"debug", "info", "warn", "error"};
static cs_log_format g_format = CS_LOG_TEXT;
static const char *const g_formats[] = {"text", "logfmt", "json"};
static char g_status[512]; /* the status line shown, "" for none */
static int g_tty = -1;

void cs_log_set_format(cs_log_format f) { g_format = f; }
cs_log_format cs_log_get_format(void) { return g_format; }

int cs_log_parse_format(const char *s, cs_log_format *out) {
  for (int i = 0; i < 3; i++)
    if (strcmp(s, g_formats[i]) == 0) {
      *out = (cs_log_format)i;
      return 0;
    }
  return -1;
}

int cs_log_is_tty(void) {
  if (g_tty < 0) g_tty = isatty(2) == 1;
  return g_tty;
}

/* A growable line; on allocation failure the line is cut (logs never fail). */
typedef struct line {
  char *p;
  size_t n, cap;
  char fixed[4096];
} line;

static void put(line *l, const char *s, size_t n) {
  if (l->n + n + 1 > l->cap) {
    size_t nc = l->cap * 2;
    while (nc < l->n + n + 1) nc *= 2;
    char *np = l->p == l->fixed ? malloc(nc) : realloc(l->p, nc);
    if (!np) {
      n = l->cap - l->n - 1;
    } else {
      if (l->p == l->fixed) memcpy(np, l->fixed, l->n);
      l->p = np;
      l->cap = nc;
    }
  }
  memcpy(l->p + l->n, s, n);
  l->n += n;
  l->p[l->n] = 0;
}
static void puts_(line *l, const char *s) { put(l, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (!k || k > n || (k == 2 && c < 0xc2) || (k == 4 && c > 0xf4)) return 0;
  for (size_t i = 1; i < k; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  return k;
}

/* A JSON string literal (invalid UTF-8 becomes U+FFFD). */
static void put_json_str(line *l, const char *s) {
  puts_(l, "\"");
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      put(l, esc, 2);
      i++;
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      puts_(l, esc);
      i++;
    } else {
      size_t k = utf8_len((const unsigned char *)s + i, n - i);
      if (k) {
        put(l, s + i, k);
        i += k;
      } else {
        puts_(l, "\\ufffd");
        i++;
      }
    }
  }
  puts_(l, "\"");
}

/* A logfmt value: bare when it needs no quotes. */
static void put_logfmt_val(line *l, const char *s) {
  int bare = s[0] != 0;
  for (const char *q = s; *q && bare; q++)
    if (*q <= ' ' || *q == '=' || *q == '"' || *q == '\\' || (unsigned char)*q == 0x7f) bare = 0;
  if (bare) {
    puts_(l, s);
    return;
  }
  puts_(l, "\"");
  for (const char *q = s; *q; q++) {
    if (*q == '"' || *q == '\\') {
      char e[2] = {'\\', *q};
      put(l, e, 2);
    } else if (*q == '\n') {
      puts_(l, "\\n");
    } else if ((unsigned char)*q < 0x20) {
      put(l, " ", 1);
    } else {
      put(l, q, 1);
    }
  }
  puts_(l, "\"");
}

/* Masks the password of URLs with credentials: scheme://user:****@host
 * (as many stars as characters). */
static void mask_credentials(char *msg) {
  for (char *p = msg; (p = strstr(p, "://")) != NULL;) {
    p += 3;
    char *end = p + strcspn(p, "/@ \t\"'");
    if (*end != '@') continue;
    char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon) memset(colon + 1, '*', (size_t)(end - colon - 1));
    p = end;
  }
}

static void timestamp(char *buf, size_t size) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Writes one finished line (with its newline) in one write, around the
 * status line if one is shown. */
static void emit(line *l) {
  if (g_status[0]) {
    /* erase the status line, print, draw it again: one write */
    line o = {.p = o.fixed, .cap = sizeof o.fixed};
    puts_(&o, "\r\033[K");
    put(&o, l->p, l->n);
    puts_(&o, g_status);
    fwrite(o.p, 1, o.n, stderr);
    if (o.p != o.fixed) free(o.p);
  } else {
    fwrite(l->p, 1, l->n, stderr);
  }
  fflush(stderr);
  if (l->p != l->fixed) free(l->p);
}

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
  mask_credentials(msg);
  char ts[40];
  timestamp(ts, sizeof ts);
  if (!component) component = "cstream";
  line l = {.p = l.fixed, .cap = sizeof l.fixed};
  if (g_format == CS_LOG_JSON) {
    puts_(&l, "{\"ts\":\"");
    puts_(&l, ts);
    puts_(&l, "\",\"level\":\"");
    puts_(&l, g_names[level]);
    puts_(&l, "\",\"component\":");
    put_json_str(&l, component);
    puts_(&l, ",\"msg\":");
    put_json_str(&l, msg);
    puts_(&l, "}\n");
  } else if (g_format == CS_LOG_LOGFMT) {
    puts_(&l, "ts=");
    puts_(&l, ts);
    puts_(&l, " level=");
    puts_(&l, g_names[level]);
    puts_(&l, " component=");
    put_logfmt_val(&l, component);
    puts_(&l, " msg=");
    put_logfmt_val(&l, msg);
    puts_(&l, "\n");
  } else {
    char head[128];
    snprintf(head, sizeof head, "%s %-5s [", ts, g_names[level]);
    puts_(&l, head);
    puts_(&l, component);
    puts_(&l, "] ");
    puts_(&l, msg);
    puts_(&l, "\n");
  }
  /* One write per line: lines never interleave. */
  emit(&l);
}

void cs_log_record(const char *msg, const char *kv) {
  line l = {.p = l.fixed, .cap = sizeof l.fixed};
  char ts[40];
  timestamp(ts, sizeof ts);
  if (g_format == CS_LOG_TEXT) {
    puts_(&l, msg);
    puts_(&l, " ");
    puts_(&l, kv);
  } else if (g_format == CS_LOG_LOGFMT) {
    puts_(&l, "ts=");
    puts_(&l, ts);
    puts_(&l, " level=info msg=");
    put_logfmt_val(&l, msg);
    puts_(&l, " ");
    puts_(&l, kv);
  } else {
    puts_(&l, "{\"ts\":\"");
    puts_(&l, ts);
    puts_(&l, "\",\"level\":\"info\",\"component\":\"cstream\",\"msg\":");
    put_json_str(&l, msg);
    for (const char *p = kv; *p;) {
      p += strspn(p, " ");
      size_t n = strcspn(p, " ");
      if (!n) break;
      char tok[512];
      snprintf(tok, sizeof tok, "%.*s", (int)n, p);
      p += n;
      char *eq = strchr(tok, '=');
      if (!eq) continue;
      *eq = 0;
      puts_(&l, ",");
      put_json_str(&l, tok);
      puts_(&l, ":");
      char *end;
      const char *v = eq + 1;
      strtod(v, &end);
      int num = v[0] && !*end && strspn(v, "0123456789.-+eE") == strlen(v) && strcmp(v, "-") != 0;
      if (num)
        puts_(&l, v);
      else
        put_json_str(&l, v);
    }
    puts_(&l, "}");
  }
  puts_(&l, "\n");
  emit(&l);
}

void cs_log_status(const char *text) {
  if (!cs_log_is_tty()) return;
  if (!text || !text[0]) {
    if (g_status[0]) fputs("\r\033[K", stderr);
    g_status[0] = 0;
    fflush(stderr);
    return;
  }
  struct winsize ws;
  size_t width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? (size_t)ws.ws_col - 1 : 79;
  if (width >= sizeof g_status) width = sizeof g_status - 1;
  snprintf(g_status, width + 1, "%s", text);
  fprintf(stderr, "\r\033[K%s", g_status);
  fflush(stderr);
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

void cs_log_status_hide(void) {
  if (g_status[0]) fputs("\r\033[K", stderr);
}

void cs_log_status_show(void) {
  if (g_status[0]) fputs(g_status, stderr);
}
