/* cs_time: event time as integer microseconds since the Unix epoch.
 *
 * Parses the exchange's RFC 3339 timestamps exactly (no floating point),
 * formats window bounds back to RFC 3339, and parses the durations scripts
 * write ("500ms", "30s", "1m", "1h", or a number of seconds). Pure
 * functions, no allocation. */
#ifndef CS_TIME_H
#define CS_TIME_H

#include <stddef.h>
#include <stdint.h>

#define CS_US_PER_S INT64_C(1000000)

/* Strict `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` with a real calendar date and
 * hour < 24, minute < 60, second < 60. Digits past the microsecond are
 * truncated. Returns 0 and sets *out, or -1 with a reason in *why. */
int cs_time_parse_rfc3339(const char *s, size_t len, int64_t *out, const char **why);

/* Writes `YYYY-MM-DDTHH:MM:SSZ` (second precision, floor) into buf, which
 * must hold at least CS_TIME_RFC3339_LEN + 1 bytes; returns the length. */
#define CS_TIME_RFC3339_LEN 20
size_t cs_time_format_rfc3339(int64_t us, char *buf);

/* "500ms", "30s", "1.5s", "1m", "1h", "250us", or a plain number of seconds.
 * Returns 0 and sets *out (microseconds, >= 0), or -1. */
int cs_time_parse_duration(const char *s, int64_t *out);

/* floor(a / b) for b > 0, also for negative a (times before 1970). */
static inline int64_t cs_time_floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Monotonic and wall clocks, microseconds. */
int64_t cs_time_mono_us(void);
int64_t cs_time_wall_us(void);

#endif
