#include "cs_time.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), valid far beyond any year a feed will send. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int cs_time_parse_rfc3339(const char *s, size_t len, int64_t *out, const char **why) {
  static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h, mi, sec;
  *why = "not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.fraction]Z)";
  if (len < 20 || s[len - 1] != 'Z') return -1;
  if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
      s[10] != 'T' || digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
      digits(s + 17, 2, &sec))
    return -1;
  int64_t frac_us = 0;
  size_t i = 19;
  if (s[i] == '.') {
    size_t nd = 0;
    for (i++; i < len - 1; i++, nd++) {
      if (s[i] < '0' || s[i] > '9') return -1;
      if (nd < 6) frac_us = frac_us * 10 + (s[i] - '0');
    }
    if (nd == 0 || nd > 9) return -1;
    for (; nd < 6; nd++) frac_us *= 10;
  }
  if (i != len - 1) return -1;
  *why = "date or time out of range";
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return -1;
  if (d > mdays[mo - 1] + (mo == 2 && is_leap(y))) return -1;
  int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
  *out = ((days * 24 + h) * 60 + mi) * 60 * CS_US_PER_S + (int64_t)sec * CS_US_PER_S + frac_us;
  *why = NULL;
  return 0;
}

size_t cs_time_format_rfc3339(int64_t us, char *buf) {
  int64_t secs = cs_time_floor_div(us, CS_US_PER_S);
  int64_t days = cs_time_floor_div(secs, 86400);
  int64_t rem = secs - days * 86400;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  /* Years outside 0..9999 cannot be written in this format: clamp, since
   * they cannot come from a valid trade time either. */
  if (y < 0) y = 0;
  if (y > 9999) y = 9999;
  buf[0] = (char)('0' + y / 1000);
  buf[1] = (char)('0' + y / 100 % 10);
  buf[2] = (char)('0' + y / 10 % 10);
  buf[3] = (char)('0' + y % 10);
  buf[4] = '-';
  buf[5] = (char)('0' + m / 10);
  buf[6] = (char)('0' + m % 10);
  buf[7] = '-';
  buf[8] = (char)('0' + d / 10);
  buf[9] = (char)('0' + d % 10);
  buf[10] = 'T';
  int hh = (int)(rem / 3600), mm = (int)(rem / 60 % 60), ss = (int)(rem % 60);
  buf[11] = (char)('0' + hh / 10);
  buf[12] = (char)('0' + hh % 10);
  buf[13] = ':';
  buf[14] = (char)('0' + mm / 10);
  buf[15] = (char)('0' + mm % 10);
  buf[16] = ':';
  buf[17] = (char)('0' + ss / 10);
  buf[18] = (char)('0' + ss % 10);
  buf[19] = 'Z';
  buf[20] = 0;
  return CS_TIME_RFC3339_LEN;
}

int cs_time_parse_duration(const char *s, int64_t *out) {
  if (!s || !*s) return -1;
  const char *p = s;
  /* Only plain non-negative decimal numbers: no sign, exponent, hex or inf. */
  int seen_digit = 0, seen_dot = 0;
  for (; *p; p++) {
    if (isdigit((unsigned char)*p))
      seen_digit = 1;
    else if (*p == '.' && !seen_dot)
      seen_dot = 1;
    else
      break;
  }
  if (!seen_digit) return -1;
  char num[64];
  size_t nlen = (size_t)(p - s);
  if (nlen >= sizeof num) return -1;
  memcpy(num, s, nlen);
  num[nlen] = 0;
  double v = strtod(num, NULL);
  double scale;
  if (*p == 0 || strcmp(p, "s") == 0)
    scale = 1e6;
  else if (strcmp(p, "ms") == 0)
    scale = 1e3;
  else if (strcmp(p, "us") == 0)
    scale = 1;
  else if (strcmp(p, "m") == 0)
    scale = 60e6;
  else if (strcmp(p, "h") == 0)
    scale = 3600e6;
  else
    return -1;
  double us = v * scale;
  if (!isfinite(us) || us > 9e15) return -1;
  *out = (int64_t)llround(us);
  return 0;
}

int64_t cs_time_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * CS_US_PER_S + ts.tv_nsec / 1000;
}

int64_t cs_time_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * CS_US_PER_S + ts.tv_nsec / 1000;
}
