#include "cs_err.h"

#include <stdio.h>
#include <string.h>

int cs_err_vset(cs_err *err, const char *fmt, va_list ap) {
  if (err) vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  return -1;
}

int cs_err_set(cs_err *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cs_err_vset(err, fmt, ap);
  va_end(ap);
  return -1;
}

int cs_err_prefix(cs_err *err, const char *fmt, ...) {
  if (!err) return -1;
  char old[CS_ERR_MAX], pre[CS_ERR_MAX];
  memcpy(old, err->msg, sizeof old);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  size_t n = strlen(pre);
  if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
  memcpy(err->msg, pre, n);
  memcpy(err->msg + n, ": ", 2);
  size_t rest = sizeof err->msg - n - 3;
  size_t ol = strlen(old);
  if (ol > rest) ol = rest;
  memcpy(err->msg + n + 2, old, ol);
  err->msg[n + 2 + ol] = 0;
  return -1;
}
