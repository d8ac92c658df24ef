/* check.h: the tiny assertion kit the C unit tests share.
 *
 *   CHECK(cond)                 any condition
 *   CHECK_EQ_INT(a, b)          integers (printed as long long)
 *   CHECK_EQ_UINT(a, b)         unsigned integers
 *   CHECK_EQ_STR(a, b)          NUL-terminated strings (NULL allowed)
 *   CHECK_EQ_MEM(p, n, s)       n bytes at p equal the string s (and strlen(s) == n)
 *   CHECK_EQ_DBL(a, b)          doubles, bit for bit (NaN equals NaN)
 *   CHECK_NEAR(a, b, eps)       |a - b| <= eps
 *
 * A failed check prints file:line, the expression and the values, and is
 * counted; the test goes on. CHECK_DONE() prints "N passed, M failed" and
 * is what main returns (non-zero when anything failed). Every macro
 * evaluates its arguments exactly once and yields 1 when it passed, so a
 * test can stop early: `if (!CHECK(p != NULL)) return;`. */
#ifndef CS_TEST_CHECK_H
#define CS_TEST_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed_, check_failed_;
static const char *check_context_; /* optional: printed with failures */

static inline int check_report_(int ok, const char *file, int line) {
  if (ok) {
    check_passed_++;
    return 1;
  }
  check_failed_++;
  if (check_context_) fprintf(stderr, "%s:%d:   (context: %s)\n", file, line, check_context_);
  return 0;
}

static inline int check_true_(int ok, const char *expr, const char *file, int line) {
  if (!ok) fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
  return check_report_(ok, file, line);
}

static inline int check_int_(long long a, long long b, const char *ea, const char *eb, const char *file, int line) {
  int ok = a == b;
  if (!ok) fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s == %s: %lld != %lld\n", file, line, ea, eb, a, b);
  return check_report_(ok, file, line);
}

static inline int check_uint_(unsigned long long a, unsigned long long b, const char *ea, const char *eb,
                              const char *file, int line) {
  int ok = a == b;
  if (!ok) fprintf(stderr, "%s:%d: CHECK_EQ_UINT failed: %s == %s: %llu != %llu\n", file, line, ea, eb, a, b);
  return check_report_(ok, file, line);
}

static inline int check_str_(const char *a, const char *b, const char *ea, const char *eb, const char *file,
                             int line) {
  int ok = (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
  if (!ok)
    fprintf(stderr, "%s:%d: CHECK_EQ_STR failed: %s == %s: \"%s\" != \"%s\"\n", file, line, ea, eb,
            a ? a : "(null)", b ? b : "(null)");
  return check_report_(ok, file, line);
}

static inline int check_mem_(const char *p, size_t n, const char *s, const char *ep, const char *file, int line) {
  int ok = p && s && strlen(s) == n && memcmp(p, s, n) == 0;
  if (!ok)
    fprintf(stderr, "%s:%d: CHECK_EQ_MEM failed: %s: \"%.*s\" (%zu bytes) != \"%s\"\n", file, line, ep,
            p ? (int)n : 6, p ? p : "(null)", n, s ? s : "(null)");
  return check_report_(ok, file, line);
}

static inline int check_dbl_(double a, double b, const char *ea, const char *eb, const char *file, int line) {
  int ok = (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
  if (!ok) fprintf(stderr, "%s:%d: CHECK_EQ_DBL failed: %s == %s: %.17g != %.17g\n", file, line, ea, eb, a, b);
  return check_report_(ok, file, line);
}

static inline int check_near_(double a, double b, double eps, const char *ea, const char *eb, const char *file,
                              int line) {
  int ok = fabs(a - b) <= eps;
  if (!ok)
    fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s ~= %s: %.17g vs %.17g (eps %g)\n", file, line, ea, eb, a, b, eps);
  return check_report_(ok, file, line);
}

#define CHECK(cond) check_true_(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ_INT(a, b) check_int_((long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_UINT(a, b) check_uint_((unsigned long long)(a), (unsigned long long)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_STR(a, b) check_str_((a), (b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_MEM(p, n, s) check_mem_((p), (n), (s), #p, __FILE__, __LINE__)
#define CHECK_EQ_DBL(a, b) check_dbl_((a), (b), #a, #b, __FILE__, __LINE__)
#define CHECK_NEAR(a, b, eps) check_near_((a), (b), (eps), #a, #b, __FILE__, __LINE__)

#define CHECK_DONE()                                                             \
  (printf("%s: %d passed, %d failed\n", __FILE__, check_passed_, check_failed_), \
   fflush(stdout), check_failed_ ? 1 : 0)

#endif
