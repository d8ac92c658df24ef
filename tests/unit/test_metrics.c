/* Unit tests of the operations modules: cs_metrics (the page builder, label
 * escaping, histograms, health), cs_hist's exact power-of-two counts,
 * cs_log's formats and credential masking, cs_status's progress text. */
#include <stdarg.h>
#include <unistd.h>

#include "check.h"
#include "cs_hist.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_status.h"

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

static void test_hist_pow2(void) {
  cs_hist h = {0};
  int64_t vals[] = {0, 1, 2, 3, 4, 7, 8, 127, 128, 129, 1000, 1023, 1024, 65535, 65536, 999999, 1000000, -5};
  size_t n = sizeof vals / sizeof vals[0];
  srand(7);
  for (size_t i = 0; i < n; i++) cs_hist_add(&h, vals[i]);
  int64_t extra[2000];
  for (int i = 0; i < 2000; i++) {
    extra[i] = (int64_t)(rand() % 100000000) >> (rand() % 20);
    cs_hist_add(&h, extra[i]);
  }
  for (int k = 0; k <= 40; k++) {
    uint64_t want = 0, limit = (UINT64_C(1) << k);
    for (size_t i = 0; i < n; i++) want += (uint64_t)(vals[i] < 0 ? 0 : vals[i]) < limit;
    for (int i = 0; i < 2000; i++) want += (uint64_t)extra[i] < limit;
    if (!CHECK_EQ_UINT(cs_hist_count_below_pow2(&h, k), want)) fprintf(stderr, "  k = %d\n", k);
  }
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += (uint64_t)(vals[i] < 0 ? 0 : vals[i]);
  for (int i = 0; i < 2000; i++) sum += (uint64_t)extra[i];
  CHECK_EQ_UINT(h.sum, sum);
  CHECK_EQ_UINT(h.count, n + 2000);
}

typedef struct two {
  const char *name;
  double trades;
  int ok;
} two;

static void collect(void *ud, cs_metrics_page *pg) {
  two *t = ud;
  char lb[256];
  cs_metrics_labels(lb, sizeof lb, "pipeline", t->name, "product", NULL, NULL);
  cs_metrics_counter(pg, "cstream_trades_total", "Trades\\accepted\nsecond line", lb, t->trades);
  cs_metrics_gauge(pg, "cstream_odd", "odd values", lb, t->trades > 1 ? 0.5 : NAN);
  cs_metrics_counter(pg, "cstream_odd", "same name, other type: ignored", lb, 1);
  cs_hist h = {0};
  cs_hist_add(&h, 100);
  cs_hist_add(&h, 3000000);
  cs_metrics_histogram(pg, "cstream_lat_seconds", "latency", lb, &h);
}

static void health(void *ud, cs_metrics_health *hh) {
  two *t = ud;
  cs_metrics_check(hh, t->name, "source x", t->ok, "%s", t->ok ? "connected" : "not connected (\"quoted\")");
}

static void test_page(void) {
  char lb[64];
  CHECK_EQ_STR(cs_metrics_labels(lb, sizeof lb, "a", "x\"y\\z\nw", "b", NULL, "c", "", NULL),
               "a=\"x\\\"y\\\\z\\nw\",c=\"\"");
  char small[16];
  cs_metrics_labels(small, sizeof small, "pipeline", "a-very-long-pipeline-name", NULL);
  CHECK(strlen(small) < sizeof small);

  cs_metrics *m = cs_metrics_create();
  two a = {"a\"1", 5, 1}, b = {"b", 1, 0};
  cs_metrics_add(m, collect, health, &a);
  cs_metrics_add(m, collect, health, &b);
  cs_buf out;
  cs_buf_init(&out);
  cs_metrics_render(m, &out);
  cs_buf_append(&out, "", 1);
  const char *t = out.data;
  /* one HELP/TYPE per family, samples of both collectors together */
  const char *fam = strstr(t, "# HELP cstream_trades_total Trades\\\\accepted\\nsecond line\n"
                              "# TYPE cstream_trades_total counter\n"
                              "cstream_trades_total{pipeline=\"a\\\"1\"} 5\n"
                              "cstream_trades_total{pipeline=\"b\"} 1\n");
  CHECK(fam != NULL);
  CHECK(contains(t, "cstream_odd{pipeline=\"a\\\"1\"} 0.5\ncstream_odd{pipeline=\"b\"} NaN\n"));
  CHECK(!contains(t, "other type"));
  CHECK(contains(t, "cstream_lat_seconds_bucket{pipeline=\"b\",le=\"0.000128\"} 1\n"));
  CHECK(contains(t, "cstream_lat_seconds_bucket{pipeline=\"b\",le=\"2.097152\"} 1\n"));
  CHECK(contains(t, "cstream_lat_seconds_bucket{pipeline=\"b\",le=\"4.194304\"} 2\n"));
  CHECK(contains(t, "cstream_lat_seconds_bucket{pipeline=\"b\",le=\"+Inf\"} 2\n"));
  CHECK(contains(t, "cstream_lat_seconds_sum{pipeline=\"b\"} 3.0001\n"));
  CHECK(contains(t, "cstream_lat_seconds_count{pipeline=\"b\"} 2\n"));
  CHECK(contains(t, "# TYPE process_resident_memory_bytes gauge\n"));
  CHECK(contains(t, "cstream_build_info{version=\"" CS_VERSION "\"} 1\n"));
  /* every family once */
  const char *p = t;
  int helps = 0;
  while ((p = strstr(p, "# HELP cstream_odd "))) helps++, p++;
  CHECK_EQ_INT(helps, 1);

  cs_buf_reset(&out);
  CHECK_EQ_INT(cs_metrics_health_json(m, &out), 0);
  cs_buf_append(&out, "", 1);
  CHECK(contains(out.data, "{\"status\":\"unhealthy\",\"reason\":\"pipeline b: source x: not connected (\\\"quoted\\\")\""));
  CHECK(contains(out.data, "{\"pipeline\":\"a\\\"1\",\"component\":\"source x\",\"ok\":true,\"detail\":\"connected\"}"));
  cs_metrics_remove(m, &b);
  cs_buf_reset(&out);
  CHECK_EQ_INT(cs_metrics_health_json(m, &out), 1);
  cs_buf_append(&out, "", 1);
  CHECK(contains(out.data, "{\"status\":\"ok\",\"checks\":[{"));
  cs_buf_free(&out);
  cs_metrics_destroy(m);
  CHECK(cs_metrics_rss_bytes() > 100000);
}

/* Runs fn with stderr going to a file; returns what was written (static). */
static const char *capture_stderr(void (*fn)(void)) {
  static char buf[8192];
  char path[] = "/tmp/cstream-test-log-XXXXXX";
  int fd = mkstemp(path);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  close(fd);
  unlink(path);
  return buf;
}

static void log_some(void) {
  cs_log(CS_LOG_WARN, "sink clickhouse.x", "connecting to http://writer:s3cret@db:8123/ failed: \"quoted\" \\ \xff");
  cs_log(CS_LOG_DEBUG, "x", "not shown at info");
  cs_log_record("summary", "pipeline=p lines=12 trades=3 elapsed_s=0.5 status=ok");
}

static void test_log_formats(void) {
  cs_log_set_format(CS_LOG_TEXT);
  const char *t = capture_stderr(log_some);
  CHECK(contains(t, " warn  [sink clickhouse.x] connecting to http://writer:******@db:8123/ failed: \"quoted\" \\ \xff\n"));
  CHECK(!contains(t, "s3cret"));
  CHECK(!contains(t, "not shown"));
  CHECK(contains(t, "\nsummary pipeline=p lines=12 trades=3 elapsed_s=0.5 status=ok\n"));

  cs_log_set_format(CS_LOG_LOGFMT);
  t = capture_stderr(log_some);
  CHECK(contains(t, " level=warn component=\"sink clickhouse.x\" msg=\"connecting to http://writer:******@db:8123/ "
                    "failed: \\\"quoted\\\" \\\\ \xff\"\n"));
  CHECK(strncmp(t, "ts=", 3) == 0);
  CHECK(contains(t, " level=info msg=summary pipeline=p lines=12 trades=3 elapsed_s=0.5 status=ok\n"));

  cs_log_set_format(CS_LOG_JSON);
  t = capture_stderr(log_some);
  CHECK(contains(t, "\",\"level\":\"warn\",\"component\":\"sink clickhouse.x\",\"msg\":\"connecting to "
                    "http://writer:******@db:8123/ failed: \\\"quoted\\\" \\\\ \\ufffd\"}\n"));
  CHECK(strncmp(t, "{\"ts\":\"", 7) == 0);
  CHECK(contains(t, "\"msg\":\"summary\",\"pipeline\":\"p\",\"lines\":12,\"trades\":3,\"elapsed_s\":0.5,\"status\":\"ok\"}\n"));
  cs_log_set_format(CS_LOG_TEXT);

  cs_log_format f;
  CHECK_EQ_INT(cs_log_parse_format("logfmt", &f), 0);
  CHECK_EQ_INT(f, CS_LOG_LOGFMT);
  CHECK_EQ_INT(cs_log_parse_format("xml", &f), -1);
}

static void test_progress_text(void) {
  char b[160];
  cs_status_format_progress(b, sizeof b, 50000000, 200000000, 2310000, 25000000);
  CHECK_EQ_STR(b, "25.0% 50.0 MB/200.0 MB 2.31 M trades/s ETA 0:06");
  cs_status_format_progress(b, sizeof b, 1000, 0, 12.4, 0);
  CHECK_EQ_STR(b, "1 kB read 12 trades/s");
  cs_status_format_progress(b, sizeof b, 0, 10000000000ULL, 1500, 1000000);
  CHECK_EQ_STR(b, "0.0% 0 kB/10.00 GB 1.5 k trades/s ETA 2:46:40");
}

int main(void) {
  test_hist_pow2();
  test_page();
  test_log_formats();
  test_progress_text();
  return CHECK_DONE();
}
