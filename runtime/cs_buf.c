#include "cs_buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_buf_init(cs_buf *b) { memset(b, 0, sizeof *b); }

void cs_buf_free(cs_buf *b) {
  free(b->data);
  cs_buf_init(b);
}

void cs_buf_reset(cs_buf *b) { b->len = 0; }

static int reserve(cs_buf *b, size_t n) {
  if (b->oom) return -1;
  if (b->len + n + 1 <= b->cap) return 0;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < b->len + n + 1) nc *= 2;
  char *nd = realloc(b->data, nc);
  if (!nd) {
    b->oom = 1;
    return -1;
  }
  b->data = nd;
  b->cap = nc;
  return 0;
}

void cs_buf_append(cs_buf *b, const void *p, size_t n) {
  if (reserve(b, n) != 0) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
}

void cs_buf_puts(cs_buf *b, const char *s) { cs_buf_append(b, s, strlen(s)); }

void cs_buf_printf(cs_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || reserve(b, (size_t)n) != 0) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void cs_buf_json_str(cs_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (reserve(b, n + 2) != 0) return;
  cs_buf_append(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    cs_buf_append(b, s + run, i - run);
    run = i + 1;
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    if (c == '"' || c == '\\') {
      esc[1] = (char)c;
      cs_buf_append(b, esc, 2);
    } else if (c == '\n') {
      cs_buf_append(b, "\\n", 2);
    } else {
      cs_buf_append(b, esc, 6);
    }
  }
  cs_buf_append(b, s + run, n - run);
  cs_buf_append(b, "\"", 1);
}

void cs_buf_json_num(cs_buf *b, double d) {
  if (!isfinite(d)) {
    cs_buf_append(b, "null", 4);
    return;
  }
  char tmp[40];
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (strtod(tmp, NULL) == d) break;
  }
  cs_buf_append(b, tmp, (size_t)n);
}
