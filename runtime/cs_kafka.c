#include "cs_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs_log.h"
#include "cs_time.h"

struct cs_kafka {
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  rd_kafka_type_t type;
  char label[112];
  cs_kafka_cbs cbs;
  int fds[2];
  uv_poll_t poll;
  uv_idle_t idle;
  int handles, closed, consumer_closed;
  cs_log_limiter lim_log, lim_err;
};

/* ------------------------------------------------------------------ logs */

/* librdkafka logs with syslog levels. */
static cs_log_level level_of(int syslog_level) {
  if (syslog_level <= 3) return CS_LOG_ERROR;
  if (syslog_level == 4) return CS_LOG_WARN;
  if (syslog_level <= 6) return CS_LOG_INFO;
  return CS_LOG_DEBUG;
}

/* Served on the loop thread (log.queue = true). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  cs_kafka *k = rd_kafka_opaque(rk);
  cs_log_level lv = level_of(level);
  if (k)
    cs_log_limited(&k->lim_log, lv, k->label, "librdkafka %s: %s", fac, buf);
  else
    cs_log(lv, "kafka", "librdkafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
  cs_kafka *k = opaque;
  int fatal = code == RD_KAFKA_RESP_ERR__FATAL;
  char fbuf[512];
  rd_kafka_resp_err_t err = (rd_kafka_resp_err_t)code;
  if (fatal) {
    err = rd_kafka_fatal_error(rk, fbuf, sizeof fbuf);
    reason = fbuf;
    cs_error(k->label, "fatal: %s: %s", rd_kafka_err2name(err), reason);
  } else {
    cs_log_limited(&k->lim_err, CS_LOG_WARN, k->label, "%s: %s", rd_kafka_err2name(err), reason);
  }
  if (k->cbs.on_error) k->cbs.on_error(k->cbs.ud, fatal, err, reason);
}

/* ------------------------------------------------------------------ conf */

int cs_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value, cs_err *err) {
  char why[512];
  if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK)
    return cs_err_set(err, "librdkafka property %s=%s: %s", key, value, why);
  return 0;
}

int cs_kafka_set_props(rd_kafka_conf_t *conf, char *const *props, size_t n, const char *what, cs_err *err) {
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(props[i], '=');
    if (!eq || eq == props[i]) return cs_err_set(err, "%s: '%s' is not key=value", what, props[i]);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - props[i]), props[i]);
    if (cs_kafka_set(conf, key, eq + 1, err)) return -1;
  }
  return 0;
}

rd_kafka_conf_t *cs_kafka_conf(const char *brokers, cs_err *err) {
  if (strcmp(brokers, CS_KAFKA_EMBEDDED) == 0 && !(brokers = cs_kafka_embedded(err))) return NULL;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* cs_log's level decides what librdkafka bothers to format. */
  const char *lv = cs_log_get_level() <= CS_LOG_DEBUG ? "7" : cs_log_get_level() <= CS_LOG_INFO ? "5" : "4";
  if (cs_kafka_set(conf, "bootstrap.servers", brokers, err) || cs_kafka_set(conf, "client.id", "cstream", err) ||
      cs_kafka_set(conf, "log.queue", "true", err) || cs_kafka_set(conf, "log_level", lv, err))
    goto error;
  rd_kafka_conf_set_log_cb(conf, log_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  return conf;
error:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

/* ---------------------------------------------------------------- client */

static void drain_pipe(cs_kafka *k) {
  char buf[256];
  while (read(k->fds[0], buf, sizeof buf) > 0) {
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  cs_kafka *k = h->data;
  drain_pipe(k);
  if (!k->closed) k->cbs.on_wake(k->cbs.ud);
}

static void on_idle(uv_idle_t *h) {
  cs_kafka *k = h->data;
  uv_idle_stop(&k->idle);
  if (!k->closed) k->cbs.on_wake(k->cbs.ud);
}

cs_kafka *cs_kafka_create(uv_loop_t *loop, rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *label,
                          const cs_kafka_cbs *cbs, cs_err *err) {
  cs_kafka *k = calloc(1, sizeof *k);
  if (!k) {
    rd_kafka_conf_destroy(conf);
    cs_err_set(err, "out of memory");
    return NULL;
  }
  k->fds[0] = k->fds[1] = -1;
  k->type = type;
  k->cbs = *cbs;
  snprintf(k->label, sizeof k->label, "%s", label);
  cs_log_limiter init = CS_LOG_LIMITER_INIT;
  k->lim_log = k->lim_err = init;
  rd_kafka_conf_set_opaque(conf, k);
  char why[512];
  if (!(k->rk = rd_kafka_new(type, conf, why, sizeof why))) {
    rd_kafka_conf_destroy(conf);
    cs_err_set(err, "cannot create the Kafka %s: %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
    goto error;
  }
  if (type == RD_KAFKA_CONSUMER) {
    rd_kafka_poll_set_consumer(k->rk);
    k->q = rd_kafka_queue_get_consumer(k->rk);
  } else {
    k->q = rd_kafka_queue_get_main(k->rk);
  }
  if (!k->q) {
    cs_err_set(err, "no event queue (a consumer needs group.id)");
    goto error;
  }
  rd_kafka_set_log_queue(k->rk, k->q);
  if (pipe(k->fds) != 0) {
    cs_err_set(err, "pipe: %s", strerror(errno));
    goto error;
  }
  for (int i = 0; i < 2; i++) {
    fcntl(k->fds[i], F_SETFL, fcntl(k->fds[i], F_GETFL) | O_NONBLOCK);
    fcntl(k->fds[i], F_SETFD, FD_CLOEXEC);
  }
  uv_poll_init(loop, &k->poll, k->fds[0]);
  uv_idle_init(loop, &k->idle);
  k->poll.data = k->idle.data = k;
  k->handles = 1;
  rd_kafka_queue_io_event_enable(k->q, k->fds[1], "1", 1);
  uv_poll_start(&k->poll, UV_READABLE, on_poll);
  /* Whatever arrived before the pipe was set up. */
  cs_kafka_rewake(k);
  return k;
error:
  cs_kafka_destroy(k);
  return NULL;
}

rd_kafka_t *cs_kafka_rk(const cs_kafka *k) { return k->rk; }
rd_kafka_queue_t *cs_kafka_queue(const cs_kafka *k) { return k->q; }
void *cs_kafka_ud(const cs_kafka *k) { return k->cbs.ud; }
const char *cs_kafka_label(const cs_kafka *k) { return k->label; }

void cs_kafka_rewake(cs_kafka *k) {
  if (k->handles && !k->closed) uv_idle_start(&k->idle, on_idle);
}

void cs_kafka_close(cs_kafka *k) {
  if (!k || k->closed) return;
  k->closed = 1;
  if (k->q) rd_kafka_queue_io_event_enable(k->q, -1, NULL, 0);
  if (k->handles) {
    uv_close((uv_handle_t *)&k->poll, NULL);
    uv_close((uv_handle_t *)&k->idle, NULL);
  }
}

void cs_kafka_destroy(cs_kafka *k) {
  if (!k) return;
  if (k->q) rd_kafka_queue_io_event_enable(k->q, -1, NULL, 0);
  k->closed = 1;
  if (k->rk && k->type == RD_KAFKA_CONSUMER) {
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(k->rk);
    if (e && e != RD_KAFKA_RESP_ERR__FATAL) cs_warn(k->label, "closing the consumer: %s", rd_kafka_err2str(e));
  }
  if (k->q) rd_kafka_queue_destroy(k->q);
  if (k->rk) rd_kafka_destroy(k->rk);
  for (int i = 0; i < 2; i++)
    if (k->fds[i] >= 0) close(k->fds[i]);
  free(k);
}

/* ------------------------------------------------------- embedded broker */

static struct {
  rd_kafka_t *rk; /* the mock cluster's owner: a client that never connects */
  rd_kafka_mock_cluster_t *mc;
  char bootstraps[256];
} g_emb;

/* Called from the mock cluster's thread: no limiter, errors only. */
static void emb_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  if (level <= 4) cs_log(level_of(level), "embedded broker", "%s: %s", fac, buf);
}

static void emb_shutdown(void) {
  if (g_emb.mc) rd_kafka_mock_cluster_destroy(g_emb.mc);
  if (g_emb.rk) rd_kafka_destroy(g_emb.rk);
  memset(&g_emb, 0, sizeof g_emb);
}

const char *cs_kafka_embedded(cs_err *err) {
  if (g_emb.mc) return g_emb.bootstraps;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char why[512];
  rd_kafka_conf_set_log_cb(conf, emb_log_cb);
  rd_kafka_conf_set(conf, "log_level", "4", why, sizeof why);
  if (!(g_emb.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
    rd_kafka_conf_destroy(conf);
    cs_err_set(err, "embedded broker: %s", why);
    return NULL;
  }
  if (!(g_emb.mc = rd_kafka_mock_cluster_new(g_emb.rk, 1))) {
    rd_kafka_destroy(g_emb.rk);
    g_emb.rk = NULL;
    cs_err_set(err, "embedded broker: librdkafka could not create its mock cluster");
    return NULL;
  }
  snprintf(g_emb.bootstraps, sizeof g_emb.bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(g_emb.mc));
  atexit(emb_shutdown);
  cs_info("embedded broker", "in-memory Kafka broker (librdkafka mock cluster) on %s; development and tests only",
          g_emb.bootstraps);
  return g_emb.bootstraps;
}

int cs_kafka_embedded_topic(const char *topic, int partitions, cs_err *err) {
  if (!cs_kafka_embedded(err)) return -1;
  if (partitions < 1) return cs_err_set(err, "partitions must be >= 1");
  rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(g_emb.mc, topic, partitions, 1);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
    cs_info("embedded broker", "topic %s created with %d partitions", topic, partitions);
  else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
    return cs_err_set(err, "embedded broker: creating topic %s: %s", topic, rd_kafka_err2str(e));
  return 0;
}

struct rd_kafka_mock_cluster_s *cs_kafka_embedded_cluster(void) { return g_emb.mc; }

size_t cs_kafka_time_us(int64_t us, char *buf) {
  char ts[CS_TIME_RFC3339_LEN + 1];
  cs_time_format_rfc3339(us, ts);
  int64_t frac = us - cs_time_floor_div(us, CS_US_PER_S) * CS_US_PER_S;
  return (size_t)snprintf(buf, 28, "%.19s.%06lldZ", ts, (long long)frac);
}
