/* cs_err: the error buffer every fallible C call fills.
 *
 * C functions in cstream return a status (0 = success, negative = failure)
 * and, where a person will read the reason, write one line into a cs_err
 * owned by the caller. Nothing here allocates. */
#ifndef CS_ERR_H
#define CS_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define CS_ERR_MAX 2048

typedef struct cs_err {
  char msg[CS_ERR_MAX];
} cs_err;

/* printf-style; a NULL err is allowed (the message is discarded).
 * Always returns -1 so that `return cs_err_set(err, ...)` reads naturally. */
int cs_err_set(cs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cs_err_vset(cs_err *err, const char *fmt, va_list ap);
/* Prefixes the existing message: "prefix: old message". */
int cs_err_prefix(cs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
