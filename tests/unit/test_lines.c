/* cs_lines on temporary files, plain and gzip: line splitting, final line
 * without '\n', CRLF, empty lines, overlong lines, truncated gzip, lines
 * across the 256 KiB read buffer, standard input. Expected lines come from
 * splitting the written bytes here. */
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "cs_json.h"
#include "cs_lines.h"

static char dir[] = "/tmp/cs_test_lines.XXXXXX";
static char path_buf[512];
static const char *tmp(const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
  return path_buf;
}

static void write_plain(const char *path, const char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(2);
  }
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

static void write_gz(const char *path, const char *data, size_t n, const char *mode) {
  gzFile g = gzopen(path, mode);
  if (!g) {
    perror(path);
    exit(2);
  }
  size_t off = 0;
  while (off < n) {
    unsigned chunk = n - off > (1u << 20) ? (1u << 20) : (unsigned)(n - off);
    if (gzwrite(g, data + off, chunk) != (int)chunk) {
      fprintf(stderr, "gzwrite failed\n");
      exit(2);
    }
    off += chunk;
  }
  gzclose(g);
}

static long file_size(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fclose(f);
  return n;
}

/* What a reader should return for data with max_line: one entry per line. */
typedef struct exp_line {
  int result; /* CS_LINES_OK or CS_LINES_TOO_LONG */
  size_t off, len;
} exp_line;

static size_t expected(const char *data, size_t n, size_t max_line, exp_line *out, size_t cap) {
  size_t k = 0, start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n && start == n) break; /* no final partial line */
    if (i == n || data[i] == '\n') {
      if (k < cap) {
        out[k].off = start;
        out[k].len = i - start;
        out[k].result = i - start > max_line ? CS_LINES_TOO_LONG : CS_LINES_OK;
      }
      k++;
      start = i + 1;
    }
  }
  return k;
}

/* Reads `path` to the end and compares with the lines of data. Returns the
 * number of lines matched, or stops at the first mismatch. */
static size_t read_compare(const char *path, size_t max_line, const char *data, size_t n, int line) {
  static exp_line exp[200000];
  size_t ne = expected(data, n, max_line, exp, sizeof exp / sizeof *exp);
  cs_err err;
  err.msg[0] = 0;
  cs_lines *lr = cs_lines_open(path, max_line, &err);
  if (!check_true_(lr != NULL, "cs_lines_open", __FILE__, line)) {
    fprintf(stderr, "  %s\n", err.msg);
    return 0;
  }
  size_t k = 0, bad_long = 0;
  for (;; k++) {
    const char *l = NULL;
    size_t len = 12345;
    uint64_t lineno = 0;
    cs_lines_result r = cs_lines_next(lr, &l, &len, &lineno, &err);
    if (r == CS_LINES_EOF) break;
    if (k >= ne) {
      check_true_(0, "no more lines than expected", __FILE__, line);
      break;
    }
    char ctx[128];
    snprintf(ctx, sizeof ctx, "%s, line %zu of %zu, max_line %zu", path, k + 1, ne, max_line);
    check_context_ = ctx;
    int ok = check_int_(r, exp[k].result, "result", "expected", __FILE__, line) &&
             check_uint_(lineno, k + 1, "lineno", "k + 1", __FILE__, line);
    /* A wrong length of an overlong line is reported (once) but does not
     * stop the comparison of the lines after it. */
    if (ok && r == CS_LINES_TOO_LONG && len != exp[k].len) {
      if (bad_long++ == 0) check_uint_(len, exp[k].len, "len (first wrong overlong length)", "expected", __FILE__, line);
    } else if (ok && !check_uint_(len, exp[k].len, "len", "expected", __FILE__, line)) {
      ok = 0;
    }
    if (ok && r == CS_LINES_OK) {
      ok = check_true_(l != NULL && memcmp(l, data + exp[k].off, len) == 0, "line bytes", __FILE__, line);
      /* CS_JSON_PADDING readable bytes follow (ASan checks the read). */
      volatile char c = l[len + CS_JSON_PADDING - 1];
      (void)c;
    }
    check_context_ = NULL;
    if (!ok || r == CS_LINES_ERROR) {
      if (r == CS_LINES_ERROR) fprintf(stderr, "  error: %s\n", err.msg);
      break;
    }
  }
  if (k == ne) {
    /* EOF stays EOF */
    const char *l;
    size_t len;
    uint64_t lineno;
    check_int_(cs_lines_next(lr, &l, &len, &lineno, &err), CS_LINES_EOF, "again", "EOF", __FILE__, line);
  }
  check_uint_(k, ne, "lines read", "expected", __FILE__, line);
  if (bad_long) fprintf(stderr, "%s:%d:   %zu overlong lines in %s had a wrong length\n", __FILE__, line, bad_long, path);
  cs_lines_close(lr);
  return k;
}

/* Both plain and gzip. */
static void both(const char *name, const char *data, size_t n, size_t max_line, int line) {
  char p[600];
  snprintf(p, sizeof p, "%s", tmp(name));
  write_plain(p, data, n);
  read_compare(p, max_line, data, n, line);
  snprintf(p, sizeof p, "%s.gz", tmp(name));
  write_gz(p, data, n, "wb");
  read_compare(p, max_line, data, n, line);
}
#define BOTH(name, s, max_line) both((name), (s), strlen(s), (max_line), __LINE__)

static void test_simple(void) {
  BOTH("simple", "a\nbb\n\nccc\n", 1024);
  BOTH("nofinal", "a\nbb\nlast line without newline", 1024);
  BOTH("crlf", "{\"a\":1}\r\n{\"b\":2}\r\n\r\nend\r", 1024);
  BOTH("empty", "", 1024);
  BOTH("onenl", "\n", 1024);
  BOTH("nls", "\n\n\n", 1024);
  BOTH("one", "x", 1024);

  /* Check the exact values once more by hand, not through expected(). */
  write_plain(tmp("hand"), "one\r\n\ntwo", 9);
  cs_err err;
  cs_lines *lr = cs_lines_open(tmp("hand"), 100, &err);
  if (CHECK(lr != NULL)) {
    const char *l;
    size_t len;
    uint64_t no;
    CHECK_EQ_UINT(cs_lines_size(lr), 9);
    CHECK_EQ_INT(cs_lines_next(lr, &l, &len, &no, &err), CS_LINES_OK);
    CHECK_EQ_MEM(l, len, "one\r");
    CHECK_EQ_UINT(no, 1);
    CHECK_EQ_INT(cs_lines_next(lr, &l, &len, &no, &err), CS_LINES_OK);
    CHECK_EQ_UINT(len, 0);
    CHECK_EQ_UINT(no, 2);
    CHECK_EQ_INT(cs_lines_next(lr, &l, &len, &no, &err), CS_LINES_OK);
    CHECK_EQ_MEM(l, len, "two");
    CHECK_EQ_UINT(no, 3);
    CHECK_EQ_INT(cs_lines_next(lr, &l, &len, &no, &err), CS_LINES_EOF);
    CHECK_EQ_UINT(cs_lines_offset(lr), 9);
    cs_lines_close(lr);
  }
  cs_lines_close(NULL);

  /* A missing file. */
  err.msg[0] = 0;
  CHECK(cs_lines_open(tmp("does-not-exist"), 100, &err) == NULL);
  CHECK(strstr(err.msg, "does-not-exist") != NULL);
}

static void test_too_long(void) {
  /* max_line 1024: 1024 bytes is fine, 1025 is too long; the lines after
   * an overlong one read normally. */
  size_t n = 0;
  char *d = malloc(100000);
  n += (size_t)sprintf(d + n, "short\n");
  memset(d + n, 'a', 1024), n += 1024, d[n++] = '\n';
  memset(d + n, 'b', 1025), n += 1025, d[n++] = '\n';
  n += (size_t)sprintf(d + n, "after1\n");
  memset(d + n, 'c', 5000), n += 5000, d[n++] = '\n';
  memset(d + n, 'd', 1023), n += 1023, d[n++] = '\n';
  n += (size_t)sprintf(d + n, "\n");
  memset(d + n, 'e', 70000), n += 70000, d[n++] = '\n';
  n += (size_t)sprintf(d + n, "after2\n");
  memset(d + n, 'f', 3000), n += 3000; /* overlong final line without '\n' */
  both("toolong", d, n, 1024, __LINE__);

  /* By hand: the lengths reported. Each overlong line reports its own
   * length (a regression: the skipped count used to carry over, giving
   * 6025 = 1025 + 5000 for the second one). */
  cs_err err;
  cs_lines *lr = cs_lines_open(tmp("toolong"), 1024, &err);
  if (CHECK(lr != NULL)) {
    const char *l;
    size_t len;
    uint64_t no;
    static const struct { int r; size_t len; } want[] = {
        {CS_LINES_OK, 5},        {CS_LINES_OK, 1024}, {CS_LINES_TOO_LONG, 1025}, {CS_LINES_OK, 6},
        {CS_LINES_TOO_LONG, 5000}, {CS_LINES_OK, 1023}, {CS_LINES_OK, 0},          {CS_LINES_TOO_LONG, 70000},
        {CS_LINES_OK, 6},        {CS_LINES_TOO_LONG, 3000}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
      CHECK_EQ_INT(cs_lines_next(lr, &l, &len, &no, &err), want[i].r);
      CHECK_EQ_UINT(len, want[i].len);
      CHECK_EQ_UINT(no, i + 1);
    }
    CHECK_EQ_INT(cs_lines_next(lr, &l, &len, &no, &err), CS_LINES_EOF);
    cs_lines_close(lr);
  }
  /* Only overlong lines, back to back. */
  n = 0;
  for (int i = 0; i < 10; i++) memset(d + n, 'x', 2000 + i), n += 2000 + i, d[n++] = '\n';
  both("allong", d, n, 1024, __LINE__);
  free(d);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Random lines of random lengths, a few overlong, crossing the 256 KiB
 * read buffer many times. */
static void test_random(void) {
  size_t cap = 6 << 20;
  char *d = malloc(cap);
  for (int round = 0; round < 6; round++) {
    size_t max_line = round < 3 ? 1024 : (round == 3 ? 300000 : 16 << 20);
    size_t n = 0;
    while (n < (size_t)(round < 3 ? 900000 : 4 << 20)) {
      size_t len;
      uint64_t r = next();
      if (r % 50 == 0)
        len = 1000 + (size_t)(next() % (round < 3 ? 4000 : 400000)); /* sometimes overlong */
      else if (r % 7 == 0)
        len = 0;
      else
        len = (size_t)(next() % 1100);
      if (n + len + 1 > cap) break;
      for (size_t i = 0; i < len; i++) d[n + i] = (char)(' ' + (next() % 90));
      n += len;
      d[n++] = (next() % 13 == 0) ? '\r' : '\n';
      if (d[n - 1] == '\r' && n < cap) d[n++] = '\n';
    }
    if (round & 1) n--; /* drop the final '\n' */
    char name[32];
    snprintf(name, sizeof name, "random%d", round);
    both(name, d, n, max_line, __LINE__);
  }
  free(d);
}

/* Lines right around the 256 KiB buffer size, as the only lines and after
 * a short one (so the buffer has been shifted). */
static void test_chunk_boundary(void) {
  const size_t K = 256 * 1024;
  char *d = malloc(8 * K);
  static const long deltas[] = {-2, -1, 0, 1, 2};
  for (size_t a = 0; a < 5; a++) {
    size_t n = 0;
    size_t l1 = K + (size_t)deltas[a];
    memset(d + n, 'a', l1), n += l1, d[n++] = '\n';
    n += (size_t)sprintf(d + n, "mid\n");
    size_t l2 = K - 4 + (size_t)deltas[a];
    memset(d + n, 'b', l2), n += l2, d[n++] = '\n';
    memset(d + n, 'c', K * 2), n += K * 2;
    d[n++] = '\n';
    n += (size_t)sprintf(d + n, "end");
    char name[32];
    snprintf(name, sizeof name, "boundary%zu", a);
    both(name, d, n, 16 << 20, __LINE__);
    /* and with max_line exactly at those sizes */
    snprintf(name, sizeof name, "boundaryb%zu", a);
    both(name, d, n, K, __LINE__);
  }
  /* Many short lines whose total crosses the buffer at every offset of a
   * 7-byte line. */
  size_t n = 0;
  while (n < 3 * K) n += (size_t)sprintf(d + n, "%06zu\n", n / 7);
  both("shortmany", d, n, 1024, __LINE__);
  free(d);
}

static void test_gzip_more(void) {
  /* Two gzip members back to back read as one stream. */
  const char *a = "first\nsecond\n", *b = "third\nfourth";
  write_gz(tmp("multi.gz"), a, strlen(a), "wb");
  gzFile g = gzopen(tmp("multi.gz"), "ab");
  gzwrite(g, b, (unsigned)strlen(b));
  gzclose(g);
  read_compare(tmp("multi.gz"), 1024, "first\nsecond\nthird\nfourth", 25, __LINE__);

  /* Offset and size are in compressed bytes. */
  size_t n = 0;
  char *d = malloc(1 << 20);
  while (n < 900000) n += (size_t)sprintf(d + n, "{\"type\":\"match\",\"trade_id\":%zu}\n", n);
  write_gz(tmp("big.gz"), d, n, "wb9");
  long zsize = file_size(tmp("big.gz"));
  CHECK(zsize > 0 && (size_t)zsize < n);
  cs_err err;
  cs_lines *lr = cs_lines_open(tmp("big.gz"), 1024, &err);
  if (CHECK(lr != NULL)) {
    CHECK_EQ_UINT(cs_lines_size(lr), (uint64_t)zsize);
    const char *l;
    size_t len;
    uint64_t no;
    while (cs_lines_next(lr, &l, &len, &no, &err) == CS_LINES_OK) CHECK(cs_lines_offset(lr) <= (uint64_t)zsize);
    CHECK_EQ_UINT(cs_lines_offset(lr), (uint64_t)zsize);
    cs_lines_close(lr);
  }
  free(d);
}

/* Reads a truncated gzip file: every line returned must be a line of the
 * original (in order), then CS_LINES_ERROR with a reason. Returns the
 * number of good lines. */
static size_t read_truncated(const char *path, const char *data, size_t n, int line) {
  cs_err err;
  err.msg[0] = 0;
  cs_lines *lr = cs_lines_open(path, 1 << 20, &err);
  if (!check_true_(lr != NULL, "open", __FILE__, line)) return 0;
  size_t k = 0, off = 0;
  cs_lines_result r;
  const char *l;
  size_t len;
  uint64_t no;
  while ((r = cs_lines_next(lr, &l, &len, &no, &err)) == CS_LINES_OK) {
    const char *nl = memchr(data + off, '\n', n - off);
    size_t want = nl ? (size_t)(nl - (data + off)) : n - off;
    if (!check_true_(len == want && memcmp(l, data + off, len) == 0, "good line before the error", __FILE__, line))
      break;
    off += want + 1;
    k++;
  }
  check_int_(r, CS_LINES_ERROR, "result at the cut", "CS_LINES_ERROR", __FILE__, line);
  check_true_(err.msg[0] != 0, "error message", __FILE__, line);
  cs_lines_close(lr);
  return k;
}

static void test_truncated_gzip(void) {
  /* A big file cut in the middle. */
  size_t n = 0;
  char *d = malloc(2 << 20);
  while (n < (1 << 20)) n += (size_t)sprintf(d + n, "{\"type\":\"match\",\"trade_id\":%zu,\"x\":\"%zx\"}\n", n, n * 2654435761u);
  write_gz(tmp("trunc_src.gz"), d, n, "wb");
  long zs = file_size(tmp("trunc_src.gz"));
  FILE *f = fopen(tmp("trunc_src.gz"), "rb");
  char *z = malloc((size_t)zs);
  if (fread(z, 1, (size_t)zs, f) != (size_t)zs) exit(2);
  fclose(f);

  write_plain(tmp("trunc_half.gz"), z, (size_t)zs / 2);
  size_t k = read_truncated(tmp("trunc_half.gz"), d, n, __LINE__);
  CHECK(k > 1000); /* the lines before the cut were read */

  /* Only the 8-byte trailer (CRC, length) missing: all the data is there
   * but the stream is incomplete. */
  write_plain(tmp("trunc_trailer.gz"), z, (size_t)zs - 8);
  k = read_truncated(tmp("trunc_trailer.gz"), d, n, __LINE__);
  CHECK(k > 1000);

  /* A small file: ten lines, cut in the deflate data. */
  const char *small = "line1\nline2\nline3\nline4\nline5\nline6\nline7\nline8\nline9\nline10\n";
  write_gz(tmp("small_src.gz"), small, strlen(small), "wb");
  zs = file_size(tmp("small_src.gz"));
  f = fopen(tmp("small_src.gz"), "rb");
  if (fread(z, 1, (size_t)zs, f) != (size_t)zs) exit(2);
  fclose(f);
  write_plain(tmp("small_cut.gz"), z, (size_t)zs - 4);
  k = read_truncated(tmp("small_cut.gz"), small, strlen(small), __LINE__);
  CHECK_EQ_UINT(k, 10);
  write_plain(tmp("small_cut2.gz"), z, (size_t)zs - 12);
  k = read_truncated(tmp("small_cut2.gz"), small, strlen(small), __LINE__);
  (void)k;
  /* Only the gzip header. */
  write_plain(tmp("small_hdr.gz"), z, 10);
  read_truncated(tmp("small_hdr.gz"), small, strlen(small), __LINE__);
  /* A corrupted byte in the middle of the deflate data or the CRC. */
  z[zs - 6] ^= 0x55; /* CRC */
  write_plain(tmp("small_crc.gz"), z, (size_t)zs);
  read_truncated(tmp("small_crc.gz"), small, strlen(small), __LINE__);
  free(z);
  free(d);
}

static void test_stdin(void) {
  const char *s = "from\nstdin\n";
  write_plain(tmp("stdin"), s, strlen(s));
  if (!freopen(tmp("stdin"), "rb", stdin)) {
    CHECK(0);
    return;
  }
  read_compare("-", 1024, s, strlen(s), __LINE__);
}

int main(void) {
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  test_simple();
  test_too_long();
  test_random();
  test_chunk_boundary();
  test_gzip_more();
  test_truncated_gzip();
  test_stdin();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return CHECK_DONE();
}
