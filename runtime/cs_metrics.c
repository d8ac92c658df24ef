/* cs_metrics: the metrics page, the health check and their endpoints (see
 * cs_metrics.h). */
#include "cs_metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cs_httpd.h"
#include "cs_log.h"
#include "cs_time.h"

/* Histogram buckets: le = 2^k µs for k in [HIST_K_MIN, HIST_K_MAX]. */
#define HIST_K_MIN 7  /* 0.000128 s */
#define HIST_K_MAX 26 /* 67.108864 s */

typedef enum { T_COUNTER, T_GAUGE, T_HISTOGRAM } mtype;
static const char *const type_names[] = {"counter", "gauge", "histogram"};

typedef struct family {
  char *name, *help;
  mtype type;
  cs_buf body; /* its sample lines, in the order they were added */
} family;

struct cs_metrics_page {
  family *fams;
  size_t n, cap;
};

struct cs_metrics_health {
  cs_buf checks; /* JSON objects, comma-separated */
  cs_buf reason; /* failed checks, "; "-separated */
  size_t nchecks;
  int ok;
};

typedef struct collector {
  cs_metrics_collect_fn collect;
  cs_metrics_health_fn health;
  void *ud;
} collector;

struct cs_metrics {
  collector *cols;
  size_t n, cap;
  cs_httpd *httpd;
  int64_t start_wall_us;
};

/* ------------------------------------------------------------- labels */

static size_t put_escaped(char *buf, size_t size, size_t at, const char *v) {
  for (; *v && at + 3 < size; v++) {
    if (*v == '\\' || *v == '"') {
      buf[at++] = '\\';
      buf[at++] = *v;
    } else if (*v == '\n') {
      buf[at++] = '\\';
      buf[at++] = 'n';
    } else {
      buf[at++] = *v;
    }
  }
  buf[at] = 0;
  return at;
}

char *cs_metrics_label_add(char *buf, size_t size, const char *name, const char *value) {
  if (!value || size < 8) return buf;
  size_t at = strlen(buf);
  int n = snprintf(buf + at, size - at, "%s%s=\"", at ? "," : "", name);
  if (n < 0 || (size_t)n >= size - at - 2) {
    buf[at] = 0;
    return buf;
  }
  at = put_escaped(buf, size - 1, at + (size_t)n, value);
  buf[at++] = '"';
  buf[at] = 0;
  return buf;
}

char *cs_metrics_labels(char *buf, size_t size, ...) {
  if (size) buf[0] = 0;
  va_list ap;
  va_start(ap, size);
  for (;;) {
    const char *name = va_arg(ap, const char *);
    if (!name) break;
    const char *value = va_arg(ap, const char *);
    cs_metrics_label_add(buf, size, name, value);
  }
  va_end(ap);
  return buf;
}

/* -------------------------------------------------------------- pages */

static family *fam(cs_metrics_page *pg, const char *name, const char *help, mtype type) {
  for (size_t i = 0; i < pg->n; i++)
    if (strcmp(pg->fams[i].name, name) == 0) return pg->fams[i].type == type ? &pg->fams[i] : NULL;
  if (pg->n == pg->cap) {
    size_t nc = pg->cap ? pg->cap * 2 : 64;
    family *nf = realloc(pg->fams, nc * sizeof *nf);
    if (!nf) return NULL;
    pg->fams = nf;
    pg->cap = nc;
  }
  family *f = &pg->fams[pg->n];
  memset(f, 0, sizeof *f);
  f->name = strdup(name);
  f->help = strdup(help ? help : "");
  if (!f->name || !f->help) {
    free(f->name);
    free(f->help);
    return NULL;
  }
  f->type = type;
  cs_buf_init(&f->body);
  pg->n++;
  return f;
}

static void put_value(cs_buf *b, double v) {
  if (isnan(v))
    cs_buf_puts(b, "NaN");
  else if (isinf(v))
    cs_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 9007199254740992.0)
    cs_buf_printf(b, "%.0f", v);
  else
    cs_buf_json_num(b, v);
}

static void put_sample(cs_buf *b, const char *name, const char *suffix, const char *labels, const char *extra,
                       double v) {
  cs_buf_puts(b, name);
  cs_buf_puts(b, suffix);
  int has = labels && labels[0];
  if (has || extra) {
    cs_buf_puts(b, "{");
    if (has) cs_buf_puts(b, labels);
    if (extra) {
      if (has) cs_buf_puts(b, ",");
      cs_buf_puts(b, extra);
    }
    cs_buf_puts(b, "}");
  }
  cs_buf_puts(b, " ");
  put_value(b, v);
  cs_buf_puts(b, "\n");
}

void cs_metrics_counter(cs_metrics_page *pg, const char *name, const char *help, const char *labels, double v) {
  family *f = fam(pg, name, help, T_COUNTER);
  if (f) put_sample(&f->body, name, "", labels, NULL, v);
}

void cs_metrics_gauge(cs_metrics_page *pg, const char *name, const char *help, const char *labels, double v) {
  family *f = fam(pg, name, help, T_GAUGE);
  if (f) put_sample(&f->body, name, "", labels, NULL, v);
}

void cs_metrics_histogram(cs_metrics_page *pg, const char *name, const char *help, const char *labels,
                          const cs_hist *h) {
  family *f = fam(pg, name, help, T_HISTOGRAM);
  if (!f) return;
  char le[32];
  for (int k = HIST_K_MIN; k <= HIST_K_MAX; k++) {
    /* 2^k µs in seconds, exactly: six decimals, trailing zeros cut. */
    char num[24];
    snprintf(num, sizeof num, "%.6f", (double)(UINT64_C(1) << k) / 1e6);
    size_t l = strlen(num);
    while (l > 1 && num[l - 1] == '0') num[--l] = 0;
    if (num[l - 1] == '.') num[--l] = 0;
    snprintf(le, sizeof le, "le=\"%s\"", num);
    put_sample(&f->body, name, "_bucket", labels, le, (double)cs_hist_count_below_pow2(h, k));
  }
  put_sample(&f->body, name, "_bucket", labels, "le=\"+Inf\"", (double)h->count);
  put_sample(&f->body, name, "_sum", labels, NULL, (double)h->sum / 1e6);
  put_sample(&f->body, name, "_count", labels, NULL, (double)h->count);
}

static void put_help(cs_buf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      cs_buf_puts(b, "\\\\");
    else if (*s == '\n')
      cs_buf_puts(b, "\\n");
    else
      cs_buf_append(b, s, 1);
  }
}

static void page_write(cs_metrics_page *pg, cs_buf *out) {
  for (size_t i = 0; i < pg->n; i++) {
    family *f = &pg->fams[i];
    cs_buf_printf(out, "# HELP %s ", f->name);
    put_help(out, f->help);
    cs_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    cs_buf_append(out, f->body.data, f->body.len);
  }
}

static void page_free(cs_metrics_page *pg) {
  for (size_t i = 0; i < pg->n; i++) {
    free(pg->fams[i].name);
    free(pg->fams[i].help);
    cs_buf_free(&pg->fams[i].body);
  }
  free(pg->fams);
}

/* ------------------------------------------------------------- health */

void cs_metrics_check(cs_metrics_health *hh, const char *pipeline, const char *component, int ok, const char *fmt,
                      ...) {
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  cs_buf *b = &hh->checks;
  if (hh->nchecks++) cs_buf_puts(b, ",");
  cs_buf_puts(b, "{\"pipeline\":");
  cs_buf_json_str(b, pipeline ? pipeline : "", pipeline ? strlen(pipeline) : 0);
  cs_buf_puts(b, ",\"component\":");
  cs_buf_json_str(b, component ? component : "", component ? strlen(component) : 0);
  cs_buf_printf(b, ",\"ok\":%s,\"detail\":", ok ? "true" : "false");
  cs_buf_json_str(b, detail, strlen(detail));
  cs_buf_puts(b, "}");
  if (!ok) {
    if (!hh->ok) cs_buf_puts(&hh->reason, "; ");
    hh->ok = 0;
    cs_buf_printf(&hh->reason, "pipeline %s: %s: %s", pipeline ? pipeline : "?", component ? component : "?", detail);
  }
}

/* ----------------------------------------------------------- registry */

cs_metrics *cs_metrics_create(void) {
  cs_metrics *m = calloc(1, sizeof *m);
  if (m) m->start_wall_us = cs_time_wall_us();
  return m;
}

void cs_metrics_destroy(cs_metrics *m) {
  if (!m) return;
  cs_metrics_close(m);
  free(m->cols);
  free(m);
}

int cs_metrics_add(cs_metrics *m, cs_metrics_collect_fn collect, cs_metrics_health_fn health, void *ud) {
  if (m->n == m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 8;
    collector *ncols = realloc(m->cols, nc * sizeof *ncols);
    if (!ncols) return -1;
    m->cols = ncols;
    m->cap = nc;
  }
  m->cols[m->n++] = (collector){collect, health, ud};
  return 0;
}

void cs_metrics_remove(cs_metrics *m, void *ud) {
  for (size_t i = 0; i < m->n; i++)
    if (m->cols[i].ud == ud) {
      memmove(&m->cols[i], &m->cols[i + 1], (m->n - i - 1) * sizeof *m->cols);
      m->n--;
      i--;
    }
}

uint64_t cs_metrics_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  return n == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

static void process_metrics(cs_metrics *m, cs_metrics_page *pg) {
  char lb[128];
  cs_metrics_gauge(pg, "cstream_build_info", "cstream's version (the value is always 1)",
                   cs_metrics_labels(lb, sizeof lb, "version", CS_VERSION, NULL), 1);
  cs_metrics_gauge(pg, "process_resident_memory_bytes", "Resident memory size in bytes (/proc/self/statm)", NULL,
                   (double)cs_metrics_rss_bytes());
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long long size = 0;
  if (f) {
    if (fscanf(f, "%llu", &size) != 1) size = 0;
    fclose(f);
  }
  cs_metrics_gauge(pg, "process_virtual_memory_bytes", "Virtual memory size in bytes (/proc/self/statm)", NULL,
                   (double)size * (double)sysconf(_SC_PAGESIZE));
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    cs_metrics_counter(pg, "process_cpu_seconds_total", "User and system CPU time spent, in seconds", NULL,
                       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                           (double)ru.ru_stime.tv_usec / 1e6);
  cs_metrics_gauge(pg, "process_start_time_seconds", "When cstream started, seconds since the Unix epoch", NULL,
                   (double)(m->start_wall_us / CS_US_PER_S));
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
      if (e->d_name[0] != '.') n++;
    closedir(d);
    cs_metrics_gauge(pg, "process_open_fds", "Open file descriptors", NULL, (double)(n - 1)); /* minus the DIR's own */
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    cs_metrics_gauge(pg, "process_max_fds", "Maximum open file descriptors", NULL, (double)rl.rlim_cur);
}

void cs_metrics_render(cs_metrics *m, cs_buf *out) {
  cs_metrics_page pg = {0};
  process_metrics(m, &pg);
  for (size_t i = 0; i < m->n; i++)
    if (m->cols[i].collect) m->cols[i].collect(m->cols[i].ud, &pg);
  page_write(&pg, out);
  page_free(&pg);
}

int cs_metrics_health_json(cs_metrics *m, cs_buf *out) {
  cs_metrics_health hh = {.ok = 1};
  cs_buf_init(&hh.checks);
  cs_buf_init(&hh.reason);
  for (size_t i = 0; i < m->n; i++)
    if (m->cols[i].health) m->cols[i].health(m->cols[i].ud, &hh);
  cs_buf_printf(out, "{\"status\":\"%s\"", hh.ok ? "ok" : "unhealthy");
  if (!hh.ok) {
    cs_buf_puts(out, ",\"reason\":");
    cs_buf_json_str(out, hh.reason.data ? hh.reason.data : "", hh.reason.len);
  }
  cs_buf_puts(out, ",\"checks\":[");
  cs_buf_append(out, hh.checks.data, hh.checks.len);
  cs_buf_puts(out, "]}\n");
  cs_buf_free(&hh.checks);
  cs_buf_free(&hh.reason);
  return hh.ok;
}

/* --------------------------------------------------------------- conf */

const cs_optdef cs_metrics_options[] = {
    {"port", CS_OPT_INTEGER, NULL, 0, NULL,
     "TCP port of /metrics and /healthz (0: any free port, logged); --metrics-port overrides it"},
    {"host", CS_OPT_STRING, "127.0.0.1", 0, NULL,
     "numeric address to listen on (\"0.0.0.0\": every interface); --metrics-host overrides it"},
    {"ack_timeout", CS_OPT_DURATION, "30s", 0, NULL,
     "/healthz: a sink whose records wait this long for an acknowledgement is unhealthy"},
    {NULL, 0, NULL, 0, NULL, NULL}};

int cs_metrics_conf_from_opts(cs_metrics_conf *conf, const cs_opts *opts, cs_err *err) {
  int64_t port = cs_opts_int(opts, "port");
  const char *host = cs_opts_str(opts, "host");
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (port < 0 || port > 65535)
    return cs_err_set(err, "option 'port': %lld is not a TCP port (0-65535)", (long long)port);
  if (strlen(host) >= sizeof conf->host ||
      (strchr(host, ':') ? uv_ip6_addr(host, 0, &a6) : uv_ip4_addr(host, 0, &a4)) != 0)
    return cs_err_set(err, "option 'host': '%s' is not a numeric IPv4 or IPv6 address", host);
  conf->enabled = 1;
  conf->port = (int)port;
  snprintf(conf->host, sizeof conf->host, "%s", host);
  conf->ack_timeout_us = cs_opts_int(opts, "ack_timeout");
  return 0;
}

/* -------------------------------------------------------------- server */

static void on_request(void *ud, const char *method, const char *path, cs_httpd_response *r) {
  cs_metrics *m = ud;
  (void)method;
  if (strcmp(path, "/metrics") == 0) {
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    cs_metrics_render(m, &r->body);
  } else if (strcmp(path, "/healthz") == 0) {
    r->content_type = "application/json";
    r->status = cs_metrics_health_json(m, &r->body) ? 200 : 503;
  } else if (strcmp(path, "/") == 0) {
    cs_buf_puts(&r->body,
                "cstream " CS_VERSION "\n/metrics  Prometheus metrics\n/healthz  health (200 or 503, JSON)\n");
  } else {
    r->status = 404;
    cs_buf_puts(&r->body, "not found: try /metrics or /healthz\n");
  }
  if (r->body.oom) {
    cs_buf_reset(&r->body);
    r->body.oom = 0;
    r->status = 500;
    r->content_type = NULL;
  }
}

int cs_metrics_listen(cs_metrics *m, uv_loop_t *loop, const char *host, int port, cs_err *err) {
  if (m->httpd) return cs_err_set(err, "metrics: already listening");
  if (!(m->httpd = cs_httpd_create(loop, host, port, on_request, m, err))) {
    cs_err_prefix(err, "metrics");
    return -1;
  }
  const char *h = host && host[0] ? host : "127.0.0.1";
  int v6 = strchr(h, ':') != NULL;
  cs_info("metrics", "serving http://%s%s%s:%d/metrics and /healthz", v6 ? "[" : "", h, v6 ? "]" : "",
          cs_httpd_port(m->httpd));
  return 0;
}

int cs_metrics_port(const cs_metrics *m) { return m->httpd ? cs_httpd_port(m->httpd) : 0; }

void cs_metrics_close(cs_metrics *m) {
  if (!m || !m->httpd) return;
  cs_httpd_close(m->httpd);
  m->httpd = NULL;
}
