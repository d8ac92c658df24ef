/* cs_buf: a growable byte buffer for building output (JSON lines, HTTP
 * bodies). Appends never fail silently: an allocation failure sets `oom`,
 * later appends are ignored, and the writer checks `oom` once at the end. */
#ifndef CS_BUF_H
#define CS_BUF_H

#include <stddef.h>

typedef struct cs_buf {
  char *data;
  size_t len, cap;
  int oom;
} cs_buf;

void cs_buf_init(cs_buf *b);
void cs_buf_free(cs_buf *b);
void cs_buf_reset(cs_buf *b); /* len = 0, keeps the memory */
void cs_buf_append(cs_buf *b, const void *p, size_t n);
void cs_buf_puts(cs_buf *b, const char *s);
void cs_buf_printf(cs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal with escapes. */
void cs_buf_json_str(cs_buf *b, const char *s, size_t n);
/* The shortest decimal that reads back as exactly d (JSON has no NaN or
 * infinity: those are written as null). */
void cs_buf_json_num(cs_buf *b, double d);

#endif
