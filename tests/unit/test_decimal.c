/* cs_decimal_parse: must agree with strtod bit for bit on every plain
 * decimal, and reject everything that is not `^[0-9]+(\.[0-9]+)?$`. */
#include "check.h"
#include "cs_decimal.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static int below(int n) { return (int)(next() % (uint64_t)n); }

/* Parses s (no NUL needed at len: the buffer is copied so the byte after
 * the text is a digit, which must not be read) and compares with strtod. */
static int same_as_strtod(const char *s, int line) {
  size_t n = strlen(s);
  char *copy = malloc(n + 2);
  memcpy(copy, s, n);
  copy[n] = '7'; /* a digit right after the text */
  copy[n + 1] = 0;
  double got = -1.0;
  int rc = cs_decimal_parse(copy, n, &got);
  double want = strtod(s, NULL);
  check_context_ = s;
  int ok = check_int_(rc, 0, "rc", "0", __FILE__, line) && check_dbl_(got, want, "parsed", "strtod", __FILE__, line);
  check_context_ = NULL;
  free(copy);
  return ok;
}

static void rejects(const char *s, size_t n, int line) {
  double got = 42.0;
  check_context_ = s;
  check_int_(cs_decimal_parse(s, n, &got), -1, "rc", "-1", __FILE__, line);
  check_context_ = NULL;
}

#define SAME(s) same_as_strtod((s), __LINE__)
#define REJECT(s) rejects((s), strlen(s), __LINE__)

static void test_fixed(void) {
  static const char *const cases[] = {
      "0", "0.0", "00", "000.000", "1", "1.0", "10", "0.1", "0.2", "0.3", "0.7", "1.1", "2.675", "116827.85",
      "116827.86", "4825.29", "4825.3", "0.00004147", "0.00002298", "0.00188281", "1", "14.7775",
      "0.000000000000000000001", "0.0000000000000000000001",  /* 22 decimals */
      "0.00000000000000000000001",                             /* 23 */
      "123456789012345", "1234567890123456", "12345678901234567", "123456789012345678", "1234567890123456789",
      "12345678901234567890", "123456789012345678901234567890", "9007199254740992", "9007199254740993",
      "9007199254740993.0", "9007199254740995", "18446744073709551615", "18446744073709551616",
      "99999999999999999999", "999999999999999.9", "99999999999999.99", "0.999999999999999",
      "0.9999999999999999", "0.99999999999999999", "0.999999999999999999999999", "1.7976931348623157",
      "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
      "10000000000000000000000", "1000000000000000000000", "100000000000000000000000", "0000000000000000000000001",
      "00000000000000000000001.5", "0000000000000000000001.5", "1.000000000000000000000000000001",
      "2.2250738585072014", "0.1000000000000000055511151231257827", "0.1000000000000000055511151231257828",
      /* Halfway cases between doubles (classic strtod traps). */
      "9007199254740993.000000000000000000000000000001", "2.00000000000000011102230246251565404236316680908203125",
      "2.00000000000000011102230246251565404236316680908203124", "1.00000000000000011102230246251565404236316680908203125",
      "0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "0000000000000000000000000000001", /* underflows to 0 */
      "49.99999999999999", "5.000000000000001", "123.456", "0.30000000000000004",
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) SAME(cases[i]);

  /* Exact values we know without strtod. */
  double d = -1;
  CHECK_EQ_INT(cs_decimal_parse("0", 1, &d), 0);
  CHECK_EQ_DBL(d, 0.0);
  CHECK(!signbit(d));
  CHECK_EQ_INT(cs_decimal_parse("116827.85", 9, &d), 0);
  CHECK_EQ_DBL(d, 116827.85);
  CHECK_EQ_INT(cs_decimal_parse("12345", 2, &d), 0); /* len, not NUL, ends the text */
  CHECK_EQ_DBL(d, 12.0);
  CHECK_EQ_INT(cs_decimal_parse("1.5xyz", 3, &d), 0);
  CHECK_EQ_DBL(d, 1.5);
  CHECK_EQ_INT(cs_decimal_parse("0.5", 3, &d), 0);
  CHECK_EQ_DBL(d, 0.5);
}

static void test_long(void) {
  /* Strings longer than 128 bytes (the heap copy path), with and without
   * a fraction, and right around the 128-byte stack buffer. */
  char buf[600];
  for (int len = 120; len <= 140; len++) {
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < len; i++) buf[i] = (char)('0' + (i * 7 + 3) % 10);
    SAME(buf);
    buf[len / 2] = '.';
    SAME(buf);
    buf[0] = '0';
    buf[1] = '.';
    buf[len / 2] = '5';
    SAME(buf);
  }
  for (int len = 129; len < 590; len += 37) {
    for (int i = 0; i < len; i++) buf[i] = (char)('0' + below(10));
    buf[0] = '1';
    buf[len] = 0;
    SAME(buf);
    buf[len - 200 > 1 ? len - 200 : 1] = '.';
    SAME(buf);
  }
  /* Long runs of leading zeros before a short value. */
  for (int z = 100; z < 300; z += 50) {
    memset(buf, '0', (size_t)z);
    strcpy(buf + z, "123.456");
    SAME(buf);
  }
}

static void test_random(void) {
  /* 1..25 significant digits, 0..12 decimals, 0..3 leading zeros. */
  char buf[128];
  int failures = 0;
  for (int iter = 0; iter < 300000 && failures < 10; iter++) {
    int sig = 1 + below(25);
    int dec = below(13);
    int lead = below(4);
    size_t n = 0;
    for (int i = 0; i < lead; i++) buf[n++] = '0';
    char digits[32];
    for (int i = 0; i < sig; i++) digits[i] = (char)('0' + below(10));
    if (below(4) != 0) digits[0] = (char)('1' + below(9));
    if (below(8) == 0) /* many trailing zeros */
      for (int i = sig / 2; i < sig; i++) digits[i] = '0';
    if (dec >= sig) {
      /* 0.000ddd */
      if (lead == 0) buf[n++] = '0';
      buf[n++] = '.';
      for (int i = 0; i < dec - sig; i++) buf[n++] = '0';
      for (int i = 0; i < sig; i++) buf[n++] = digits[i];
    } else {
      for (int i = 0; i < sig - dec; i++) buf[n++] = digits[i];
      if (dec) {
        buf[n++] = '.';
        for (int i = sig - dec; i < sig; i++) buf[n++] = digits[i];
      }
    }
    buf[n] = 0;
    if (!SAME(buf)) failures++;
  }
  /* Uniform random doubles printed with %.*f then parsed back. */
  for (int iter = 0; iter < 100000 && failures < 20; iter++) {
    double x = (double)(next() >> 11) / (double)(1ull << 53) * pow(10, below(12));
    snprintf(buf, sizeof buf, "%.*f", below(13), x);
    if (!SAME(buf)) failures++;
  }
}

static void test_reject(void) {
  static const char *const bad[] = {"",     ".",    "1.",   ".5",   "1e5", "1E5",  "-1",    "+1",  " 1",
                                    "1 ",   "1,5",  "0x10", "inf",  "nan", "NaN",  "Infinity", "1..5", "1.2.3",
                                    "1.5.", "1-",   "--1",  "a",    "1a",  "1.5e", "1.5e-3", "٣",   "\t1",
                                    "1\n",  "1\r",  "0.-1", "0x",   "1_000", "1'000", "+0", "-0",   "1.e5"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) REJECT(bad[i]);
  /* An embedded NUL is not a digit. */
  rejects("1\0002", 3, __LINE__);
  rejects("1.\0002", 4, __LINE__);
  /* len 0 with text after it. */
  rejects("123", 0, __LINE__);
}

int main(void) {
  test_fixed();
  test_long();
  test_random();
  test_reject();
  return CHECK_DONE();
}
