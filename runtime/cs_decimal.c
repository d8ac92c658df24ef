#include "cs_decimal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int cs_decimal_parse(const char *s, size_t len, double *out) {
  size_t i = 0, int_digits = 0, frac_digits = 0;
  uint64_t mant = 0;
  int sig = 0; /* significant digits accumulated in mant */
  int lossy = 0;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, int_digits++) {
    if (sig || s[i] != '0') {
      if (sig < 19) {
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        sig++;
      } else {
        lossy = 1;
      }
    }
  }
  if (int_digits == 0) return -1;
  size_t frac_start = 0;
  if (i < len) {
    if (s[i] != '.') return -1;
    frac_start = ++i;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, frac_digits++) {
      if (lossy) continue;
      if (sig || s[i] != '0') {
        if (sig < 19) {
          mant = mant * 10 + (uint64_t)(s[i] - '0');
          sig++;
        } else {
          lossy = 1;
        }
      }
    }
    if (frac_digits == 0 || i != len) return -1;
  }
  (void)frac_start;
  /* Clinger's fast path: mantissa and power of ten both exact in a double. */
  if (!lossy && sig <= 15 && frac_digits <= 22 && int_digits <= 22) {
    double v = (double)mant;
    if (frac_digits) {
      /* mant already includes the fraction digits (leading zeros skipped):
       * value = mant / 10^frac_digits. */
      v /= pow10_exact[frac_digits];
    }
    *out = v;
    return 0;
  }
  /* General case: correctly rounded by strtod on a NUL-terminated copy. */
  char stackbuf[128];
  char *buf = len < sizeof stackbuf ? stackbuf : malloc(len + 1);
  if (!buf) return -1;
  memcpy(buf, s, len);
  buf[len] = 0;
  *out = strtod(buf, NULL);
  if (buf != stackbuf) free(buf);
  return 0;
}
