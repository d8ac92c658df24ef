/* cs_time: RFC 3339 parsing and formatting, durations, floor division.
 * Expected epoch values come from timegm() or from constants checked with
 * `date -u -d ... +%s`, never from the functions under test. */
#include <time.h>

#include "check.h"
#include "cs_time.h"

/* Independent expectation: timegm on the broken-down time, plus µs. */
static int64_t expect_us(int y, int mo, int d, int h, int mi, int s, int64_t frac_us) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  time_t t = timegm(&tm);
  return (int64_t)t * 1000000 + frac_us;
}

/* Parses s; returns 1 when it parsed, and the value in *out. */
static int parse(const char *s, int64_t *out) {
  const char *why = "unset";
  int64_t v = INT64_MIN;
  int rc = cs_time_parse_rfc3339(s, strlen(s), &v, &why);
  if (rc == 0) {
    *out = v;
    CHECK(why == NULL);
    return 1;
  }
  CHECK_EQ_INT(rc, -1);
  CHECK(why != NULL && why[0] != 0);
  return 0;
}

static void ok(const char *s, int64_t want, int line) {
  int64_t got = 0;
  check_context_ = s;
  if (!check_true_(parse(s, &got), "parses", __FILE__, line)) {
    check_context_ = NULL;
    return;
  }
  check_int_(got, want, "parsed", "expected", __FILE__, line);
  check_context_ = NULL;
}

static void bad(const char *s, int line) {
  int64_t got = 0;
  check_context_ = s;
  check_true_(!parse(s, &got), "rejected", __FILE__, line);
  check_context_ = NULL;
}

#define OK(s, want) ok((s), (want), __LINE__)
#define BAD(s) bad((s), __LINE__)

static void test_parse_valid(void) {
  /* A real feed time; 1755893490 from `date -u -d 2025-08-22T20:11:30Z +%s`. */
  OK("2025-08-22T20:11:30.012637Z", INT64_C(1755893490012637));
  CHECK_EQ_INT(expect_us(2025, 8, 22, 20, 11, 30, 12637), INT64_C(1755893490012637));

  /* 0..9 fraction digits. */
  int64_t base = expect_us(2025, 8, 22, 20, 11, 30, 0);
  OK("2025-08-22T20:11:30Z", base);
  OK("2025-08-22T20:11:30.1Z", base + 100000);
  OK("2025-08-22T20:11:30.12Z", base + 120000);
  OK("2025-08-22T20:11:30.123Z", base + 123000);
  OK("2025-08-22T20:11:30.1234Z", base + 123400);
  OK("2025-08-22T20:11:30.12345Z", base + 123450);
  OK("2025-08-22T20:11:30.123456Z", base + 123456);
  /* Truncated past the microsecond, never rounded. */
  OK("2025-08-22T20:11:30.1234569Z", base + 123456);
  OK("2025-08-22T20:11:30.12345699Z", base + 123456);
  OK("2025-08-22T20:11:30.999999999Z", base + 999999);
  OK("2025-08-22T20:11:30.000000999Z", base);
  OK("2025-08-22T20:11:30.0Z", base);
  OK("2025-08-22T20:11:30.000001Z", base + 1);

  OK("1970-01-01T00:00:00Z", 0);
  OK("1970-01-01T00:00:00.000001Z", 1);
  OK("2025-12-31T23:59:59Z", expect_us(2025, 12, 31, 23, 59, 59, 0));
  OK("2026-01-01T00:00:00Z", expect_us(2026, 1, 1, 0, 0, 0, 0));
  OK("9999-12-31T23:59:59.999999Z", expect_us(9999, 12, 31, 23, 59, 59, 999999));

  /* Leap years. 951782400 from `date -u -d 2000-02-29T00:00:00Z +%s`. */
  OK("2024-02-29T12:00:00Z", expect_us(2024, 2, 29, 12, 0, 0, 0));
  OK("2000-02-29T00:00:00Z", INT64_C(951782400) * 1000000);
  OK("2024-03-01T00:00:00Z", expect_us(2024, 3, 1, 0, 0, 0, 0));
  CHECK_EQ_INT(expect_us(2024, 3, 1, 0, 0, 0, 0) - expect_us(2024, 2, 29, 0, 0, 0, 0), INT64_C(86400000000));
  /* Every month's last day. */
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  char buf[64];
  for (int m = 1; m <= 12; m++) {
    snprintf(buf, sizeof buf, "2023-%02d-%02dT00:00:00Z", m, mdays[m - 1]);
    OK(buf, expect_us(2023, m, mdays[m - 1], 0, 0, 0, 0));
    snprintf(buf, sizeof buf, "2023-%02d-%02dT00:00:00Z", m, mdays[m - 1] + 1);
    BAD(buf);
  }
}

static void test_parse_pre_epoch(void) {
  /* -1 s from `date -u -d 1969-12-31T23:59:59Z +%s`. */
  OK("1969-12-31T23:59:59Z", -1000000);
  /* Half a second before the epoch: -500000 µs (the fraction adds). */
  OK("1969-12-31T23:59:59.5Z", -500000);
  OK("1969-12-31T23:59:59.999999Z", -1);
  /* -2208988800 from `date -u -d 1900-01-01T00:00:00Z +%s`. */
  OK("1900-01-01T00:00:00Z", INT64_C(-2208988800) * 1000000);
  OK("1900-01-01T00:00:00.25Z", INT64_C(-2208988800) * 1000000 + 250000);
  OK("1960-02-29T01:02:03.000004Z", expect_us(1960, 2, 29, 1, 2, 3, 4));
  OK("0001-01-01T00:00:00Z", expect_us(1, 1, 1, 0, 0, 0, 0));
}

static void test_parse_invalid(void) {
  BAD("2023-02-29T00:00:00Z");
  BAD("2100-02-29T00:00:00Z");
  BAD("1900-02-29T00:00:00Z");
  BAD("2025-13-01T00:00:00Z");
  BAD("2025-00-01T00:00:00Z");
  BAD("2025-01-00T00:00:00Z");
  BAD("2025-01-32T00:00:00Z");
  BAD("2025-04-31T00:00:00Z");
  BAD("2025-08-22T24:00:00Z");
  BAD("2025-08-22T23:60:00Z");
  BAD("2025-08-22T23:59:60Z");
  BAD("2025-08-22T20:11:30");          /* missing Z */
  BAD("2025-08-22T20:11:30.123456");   /* missing Z */
  BAD("2025-08-22T20:11:30z");         /* lowercase z */
  BAD("2025-08-22t20:11:30Z");         /* lowercase t */
  BAD("2025-08-22T20:11:30+00:00");    /* offsets are not accepted */
  BAD("2025-08-22T20:11:30.5+00:00");
  BAD("2025-08-22 20:11:30Z");         /* space for T */
  BAD(" 2025-08-22T20:11:30Z");
  BAD("2025-08-22T20:11:30Z ");
  BAD("2025-08-22T20:11:30 Z");
  BAD("2025-08-22T20:11:30.1234567890Z"); /* 10 fraction digits */
  BAD("2025-08-22T20:11:30.Z");            /* '.' with no digits */
  BAD("2025-08-22T20:11:30.12a4Z");
  BAD("2025-08-22T20:11:30,5Z");
  BAD("2025-8-22T20:11:30Z");
  BAD("25-08-22T20:11:30Z");
  BAD("2025-08-22T20:11Z");
  BAD("2025-08-22");
  BAD("2025/08/22T20:11:30Z");
  BAD("+025-08-22T20:11:30Z");
  BAD("-025-08-22T20:11:30Z");
  BAD("2025-08-22T2:11:30.12Z");
  BAD("Z");
  BAD("");
  BAD("2025-08-22T20:11:30ZZ");
  /* Length is what counts, not a NUL: a valid prefix with len cut short. */
  const char *s = "2025-08-22T20:11:30.5Z";
  int64_t v = 0;
  const char *why;
  CHECK_EQ_INT(cs_time_parse_rfc3339(s, strlen(s) - 1, &v, &why), -1);
  CHECK_EQ_INT(cs_time_parse_rfc3339(s, strlen(s), &v, &why), 0);
  CHECK_EQ_INT(v, expect_us(2025, 8, 22, 20, 11, 30, 500000));
  /* And bytes after len are ignored. */
  const char *t = "2025-08-22T20:11:30Zgarbage";
  CHECK_EQ_INT(cs_time_parse_rfc3339(t, 20, &v, &why), 0);
  CHECK_EQ_INT(v, expect_us(2025, 8, 22, 20, 11, 30, 0));
}

static void fmt(int64_t us, const char *want, int line) {
  char buf[CS_TIME_RFC3339_LEN + 8];
  memset(buf, 'x', sizeof buf);
  size_t n = cs_time_format_rfc3339(us, buf);
  check_int_((long long)n, CS_TIME_RFC3339_LEN, "length", "20", __FILE__, line);
  check_str_(buf, want, "formatted", want, __FILE__, line);
}
#define FMT(us, want) fmt((us), (want), __LINE__)

static void test_format(void) {
  FMT(0, "1970-01-01T00:00:00Z");
  FMT(999999, "1970-01-01T00:00:00Z");
  FMT(1000000, "1970-01-01T00:00:01Z");
  FMT(INT64_C(1755893490012637), "2025-08-22T20:11:30Z");
  FMT(INT64_C(1755893490999999), "2025-08-22T20:11:30Z");
  FMT(INT64_C(1755893520000000), "2025-08-22T20:12:00Z");
  FMT(expect_us(2024, 2, 29, 23, 59, 59, 0), "2024-02-29T23:59:59Z");
  FMT(expect_us(2000, 2, 29, 0, 0, 0, 0), "2000-02-29T00:00:00Z");
  FMT(expect_us(2100, 3, 1, 0, 0, 0, 0), "2100-03-01T00:00:00Z");
  FMT(expect_us(9999, 12, 31, 23, 59, 59, 999999), "9999-12-31T23:59:59Z");
  /* Negative times floor to the second below. */
  FMT(-1, "1969-12-31T23:59:59Z");
  FMT(-999999, "1969-12-31T23:59:59Z");
  FMT(-1000000, "1969-12-31T23:59:59Z");
  FMT(-1000001, "1969-12-31T23:59:58Z");
  FMT(-500000, "1969-12-31T23:59:59Z");
  FMT(INT64_C(-86400000000), "1969-12-31T00:00:00Z");
  FMT(INT64_C(-86400000001), "1969-12-30T23:59:59Z");
  FMT(INT64_C(-2208988800) * 1000000, "1900-01-01T00:00:00Z");
  FMT(INT64_C(-2208988800) * 1000000 - 1, "1899-12-31T23:59:59Z");
  FMT(expect_us(1960, 2, 29, 1, 2, 3, 4), "1960-02-29T01:02:03Z");

  /* Round trip at second precision over a spread of times, both signs. */
  uint64_t x = 88172645463325252ull;
  char buf[CS_TIME_RFC3339_LEN + 1];
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    /* Years 0005..9892: -6.2e16 .. +2.48e17 µs around the epoch. */
    int64_t us = (int64_t)(x % UINT64_C(310000000000000000)) - INT64_C(62000000000000000);
    cs_time_format_rfc3339(us, buf);
    int64_t back = 0;
    const char *why;
    if (!CHECK_EQ_INT(cs_time_parse_rfc3339(buf, strlen(buf), &back, &why), 0)) break;
    if (!CHECK_EQ_INT(back, cs_time_floor_div(us, 1000000) * 1000000)) break;
    /* Against the C library's calendar. */
    time_t secs = (time_t)cs_time_floor_div(us, 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char want[64];
    snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (!CHECK_EQ_STR(buf, want)) break;
  }
}

static void dur_ok(const char *s, int64_t want, int line) {
  int64_t got = -12345;
  check_context_ = s;
  if (check_int_(cs_time_parse_duration(s, &got), 0, "rc", "0", __FILE__, line))
    check_int_(got, want, "duration", "expected", __FILE__, line);
  check_context_ = NULL;
}
static void dur_bad(const char *s, int line) {
  int64_t got = -12345;
  check_context_ = s;
  check_int_(cs_time_parse_duration(s, &got), -1, "rc", "-1", __FILE__, line);
  check_int_(got, -12345, "untouched", "-12345", __FILE__, line);
  check_context_ = NULL;
}
#define DUR_OK(s, want) dur_ok((s), (want), __LINE__)
#define DUR_BAD(s) dur_bad((s), __LINE__)

static void test_duration(void) {
  DUR_OK("500ms", 500000);
  DUR_OK("30s", 30000000);
  DUR_OK("1m", 60000000);
  DUR_OK("1h", INT64_C(3600000000));
  DUR_OK("1.5s", 1500000);
  DUR_OK("250us", 250);
  DUR_OK("30", 30000000);
  DUR_OK("0", 0);
  DUR_OK("0s", 0);
  DUR_OK("5s", 5000000);
  DUR_OK("0.5", 500000);
  DUR_OK("2.5m", 150000000);
  DUR_OK("1000ms", 1000000);
  DUR_OK("1.5ms", 1500);
  DUR_OK("24h", INT64_C(86400000000));
  DUR_BAD("");
  DUR_BAD("-1s");
  DUR_BAD("-1");
  DUR_BAD("+1s");
  DUR_BAD("1d");
  DUR_BAD("abc");
  DUR_BAD("1e3");
  DUR_BAD("1e3s");
  DUR_BAD("s");
  DUR_BAD("ms");
  DUR_BAD(".");
  DUR_BAD("1.2.3s");
  DUR_BAD(" 1s");
  DUR_BAD("1s ");
  DUR_BAD("1 s");
  DUR_BAD("1S");
  DUR_BAD("1sec");
  DUR_BAD("0x10");
  DUR_BAD("inf");
  DUR_BAD("nan");
  DUR_BAD("1ss");
  DUR_BAD("1mh");
}

static void test_floor_div(void) {
  CHECK_EQ_INT(cs_time_floor_div(0, 30), 0);
  CHECK_EQ_INT(cs_time_floor_div(29, 30), 0);
  CHECK_EQ_INT(cs_time_floor_div(30, 30), 1);
  CHECK_EQ_INT(cs_time_floor_div(59, 30), 1);
  CHECK_EQ_INT(cs_time_floor_div(-1, 30), -1);
  CHECK_EQ_INT(cs_time_floor_div(-29, 30), -1);
  CHECK_EQ_INT(cs_time_floor_div(-30, 30), -1);
  CHECK_EQ_INT(cs_time_floor_div(-31, 30), -2);
  CHECK_EQ_INT(cs_time_floor_div(-60, 30), -2);
  CHECK_EQ_INT(cs_time_floor_div(7, 1), 7);
  CHECK_EQ_INT(cs_time_floor_div(-7, 1), -7);
  CHECK_EQ_INT(cs_time_floor_div(INT64_MIN, 1), INT64_MIN);
  CHECK_EQ_INT(cs_time_floor_div(INT64_MAX, 30000000), INT64_MAX / 30000000);
  CHECK_EQ_INT(cs_time_floor_div(INT64_MIN, 2), INT64_MIN / 2);
  CHECK_EQ_INT(cs_time_floor_div(INT64_MIN + 1, 2), INT64_MIN / 2);
  /* Against the definition q*b <= a < (q+1)*b on a sweep. */
  for (int64_t b = 1; b <= 7; b++)
    for (int64_t a = -50; a <= 50; a++) {
      int64_t q = cs_time_floor_div(a, b);
      if (!CHECK(q * b <= a && a < (q + 1) * b)) return;
    }
}

static void test_clocks(void) {
  int64_t a = cs_time_mono_us(), b = cs_time_mono_us();
  CHECK(b >= a);
  int64_t w = cs_time_wall_us();
  CHECK(w > INT64_C(1700000000) * 1000000); /* after 2023 */
}

int main(void) {
  test_parse_valid();
  test_parse_pre_epoch();
  test_parse_invalid();
  test_format();
  test_duration();
  test_floor_div();
  test_clocks();
  return CHECK_DONE();
}
