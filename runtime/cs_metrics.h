/* cs_metrics: the Prometheus metrics page and the health check of a
 * running cstream, and the HTTP endpoints that serve them.
 *
 * A registry of collectors. Each running pipeline registers one
 * (cs_pipeline_collect / cs_pipeline_health); plugins add their own figures
 * through the optional `metrics` hook of their vtable (cs_plugin.h), which
 * the pipeline calls. Nothing is counted here: collectors read, at scrape
 * time, the counters the hot path keeps anyway, so metrics cost nothing
 * between scrapes.
 *
 * A page (cs_metrics_page) collects samples in any order and writes them in
 * the Prometheus text exposition format 0.0.4, one `# HELP` and `# TYPE`
 * per family and every sample of a family together, so several pipelines
 * can each add a sample of the same family. Names follow Prometheus
 * conventions: `cstream_..._total` counters, `_seconds` histograms, base
 * units; labels pipeline, product, source, sink. The registry adds the
 * process figures (`process_resident_memory_bytes` from /proc/self/statm,
 * CPU, start time, open files) and `cstream_build_info`.
 *
 * Health: every collector's health function adds one check per component
 * (a source connected or not, a sink acknowledging or not); the answer is
 * healthy when every check passed. As JSON:
 *   {"status":"ok","checks":[{"pipeline":"live","component":"source coinbase.live","ok":true,"detail":"connected"}]}
 *   {"status":"unhealthy","reason":"pipeline live: source coinbase.live: not connected ...","checks":[...]}
 *
 * Served by cs_httpd on the loop: GET /metrics, GET /healthz (200 or 503),
 * GET / (an index). Loop thread only. */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cs_buf.h"
#include "cs_err.h"
#include "cs_hist.h"
#include "cs_option.h"

/* Where metrics are served: cs.metrics{...} in a script, or --metrics-port. */
typedef struct cs_metrics_conf {
  int enabled;
  char host[64]; /* numeric address; default 127.0.0.1 */
  int port;      /* 0: the kernel picks one (logged) */
  /* An asynchronous sink holding unacknowledged records with no
   * acknowledgement for this long is unhealthy. */
  int64_t ack_timeout_us;
} cs_metrics_conf;

#define CS_METRICS_DEFAULT_ACK_TIMEOUT_US INT64_C(30000000)

/* The options of cs.metrics{...} (port, host, ack_timeout). */
extern const cs_optdef cs_metrics_options[];
/* Fills conf (enabled) from validated cs.metrics options; -1 with err on a
 * bad port or host. */
int cs_metrics_conf_from_opts(cs_metrics_conf *conf, const cs_opts *opts, cs_err *err);

typedef struct cs_metrics_page cs_metrics_page;

/* Writes `name="value",...` (label values escaped) into buf, from
 * NULL-terminated (name, value) pairs; a pair with a NULL value is left
 * out. Returns buf. Values longer than the buffer are cut. */
char *cs_metrics_labels(char *buf, size_t size, ...) __attribute__((sentinel));
/* Appends `,name="value"` (escaped) to a label list built by
 * cs_metrics_labels. */
char *cs_metrics_label_add(char *buf, size_t size, const char *name, const char *value);

/* One sample. `labels` is a label list as above ("" or NULL for none);
 * `help` is used by the first sample of the family. A name already used
 * with another type is ignored. */
void cs_metrics_counter(cs_metrics_page *pg, const char *name, const char *help, const char *labels, double v);
void cs_metrics_gauge(cs_metrics_page *pg, const char *name, const char *help, const char *labels, double v);
/* A latency histogram kept in µs, as a `_seconds` histogram with
 * cumulative buckets at powers of two of microseconds (le 0.000128 ..
 * 67.108864 s, then +Inf); exact, because cs_hist's bucket edges fall on
 * those powers. */
void cs_metrics_histogram(cs_metrics_page *pg, const char *name, const char *help, const char *labels,
                          const cs_hist *h);

/* ---- health ---- */
typedef struct cs_metrics_health cs_metrics_health;
/* Adds one check. `pipeline` and `component` name it; `detail` is a short
 * reason ("connected", "not connected (3 reconnects)"). */
void cs_metrics_check(cs_metrics_health *hh, const char *pipeline, const char *component, int ok, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));

/* ---- registry ---- */
typedef void (*cs_metrics_collect_fn)(void *ud, cs_metrics_page *pg);
typedef void (*cs_metrics_health_fn)(void *ud, cs_metrics_health *hh);

typedef struct cs_metrics cs_metrics;

cs_metrics *cs_metrics_create(void);
/* Closes the server if still open; call after the loop has drained it
 * (cs_metrics_close first). NULL is a no-op. */
void cs_metrics_destroy(cs_metrics *m);
/* Adds a collector; either function may be NULL. ud must outlive m or be
 * removed first. */
int cs_metrics_add(cs_metrics *m, cs_metrics_collect_fn collect, cs_metrics_health_fn health, void *ud);
void cs_metrics_remove(cs_metrics *m, void *ud);

/* The whole page, Prometheus text format, appended to out. */
void cs_metrics_render(cs_metrics *m, cs_buf *out);
/* The health answer as JSON appended to out; returns 1 when healthy. */
int cs_metrics_health_json(cs_metrics *m, cs_buf *out);

/* Serves /metrics, /healthz and / on the loop. Returns 0, or -1 with err
 * (address in use, ...). */
int cs_metrics_listen(cs_metrics *m, uv_loop_t *loop, const char *host, int port, cs_err *err);
/* The port listened on (after cs_metrics_listen), else 0. */
int cs_metrics_port(const cs_metrics *m);
/* Stops serving (the loop then closes the server's handles). Idempotent. */
void cs_metrics_close(cs_metrics *m);

/* Resident set size of this process in bytes (/proc/self/statm), 0 when
 * unknown. */
uint64_t cs_metrics_rss_bytes(void);

#endif
