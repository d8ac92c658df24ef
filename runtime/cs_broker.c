#include "cs_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "cs_kafka.h"
#include "cs_log.h"

#define COMP "broker"
#define MAX_FRAME (256u * 1024 * 1024)
#define HIGH_WATER (8u * 1024 * 1024) /* bytes queued for a peer before reading pauses */
#define LOW_WATER (1u * 1024 * 1024)
#define MAX_TOPICS 4096

enum { API_METADATA = 3, API_FIND_COORDINATOR = 10 };

typedef struct relay relay;
typedef struct conn conn;

typedef struct pend {
  int32_t corr;
  int16_t key, ver;
} pend;

/* One direction of a connection: bytes read from `from`, written to `to`. */
typedef struct dir {
  conn *c;
  int requests; /* 1: client -> broker */
  uv_tcp_t *from, *to;
  uint8_t *buf;
  size_t len, cap;
  uint64_t pass;   /* bytes of the current frame still to pass through */
  size_t queued;   /* bytes written to `to` and not yet flushed */
  int read_paused; /* `from` stopped reading: `to` is behind */
} dir;

struct conn {
  relay *r;
  uv_tcp_t client, upstream;
  uv_connect_t connect;
  dir req, resp;
  pend *pend;
  size_t npend, cap_pend;
  int closing, closed_handles;
  conn *next, *prev;
};

struct relay {
  uv_loop_t *loop;
  uv_tcp_t server;
  int port, mock_port, partitions;
  struct sockaddr_in upstream;
  rd_kafka_mock_cluster_t *mc;
  conn *conns;
  uint64_t accepted, created_topics;
  char *known[MAX_TOPICS]; /* topics known to exist */
  size_t nknown;
  uv_signal_t sigint, sigterm;
  uv_pipe_t control;
  int control_open;
  char line[1024];
  size_t line_len;
  int stopping;
};

/* ------------------------------------------------ Kafka wire, read side */

typedef struct rd {
  uint8_t *p, *end;
  int bad;
} rd;

static int need(rd *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return 0;
  }
  return 1;
}
static int32_t rd_i32(rd *r) {
  if (!need(r, 4)) return 0;
  int32_t v = (int32_t)((uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3]);
  r->p += 4;
  return v;
}
static int16_t rd_i16(rd *r) {
  if (!need(r, 2)) return 0;
  int16_t v = (int16_t)((uint16_t)r->p[0] << 8 | r->p[1]);
  r->p += 2;
  return v;
}
static void rd_skip(rd *r, size_t n) {
  if (need(r, n)) r->p += n;
}
static uint64_t rd_uvarint(rd *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (!need(r, 1)) return 0;
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = 1;
  return 0;
}
/* A string (int16 length, -1 null) or a compact string (uvarint length+1,
 * 0 null): sets *s and *n (*s = NULL for null). */
static void rd_str(rd *r, int compact, const char **s, size_t *n) {
  int64_t len = compact ? (int64_t)rd_uvarint(r) - 1 : rd_i16(r);
  *s = NULL;
  *n = 0;
  if (r->bad || len < 0) return;
  if (!need(r, (size_t)len)) return;
  *s = (const char *)r->p;
  *n = (size_t)len;
  r->p += len;
}
static void rd_tags(rd *r) {
  uint64_t n = rd_uvarint(r);
  for (uint64_t i = 0; i < n && !r->bad; i++) {
    rd_uvarint(r);
    rd_skip(r, (size_t)rd_uvarint(r));
  }
}
/* An array length: int32 (-1 null) or compact (uvarint n+1, 0 null). */
static int64_t rd_count(rd *r, int compact) { return compact ? (int64_t)rd_uvarint(r) - 1 : rd_i32(r); }

/* Rewrites an int32 port field equal to the mock's to the relay's. */
static void patch_port(relay *rl, rd *r) {
  uint8_t *at = r->p;
  int32_t port = rd_i32(r);
  if (!r->bad && port == rl->mock_port) {
    at[0] = (uint8_t)(rl->port >> 24);
    at[1] = (uint8_t)(rl->port >> 16);
    at[2] = (uint8_t)(rl->port >> 8);
    at[3] = (uint8_t)rl->port;
  }
}

/* ------------------------------------------------------------- topics */

static int valid_topic(const char *s, size_t n) {
  if (n == 0 || n > 249) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
          s[i] == '.' || s[i] == '_' || s[i] == '-'))
      return 0;
  return !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

static void ensure_topic(relay *rl, const char *s, size_t n) {
  if (!valid_topic(s, n)) return;
  for (size_t i = 0; i < rl->nknown; i++)
    if (strlen(rl->known[i]) == n && memcmp(rl->known[i], s, n) == 0) return;
  char name[256];
  snprintf(name, sizeof name, "%.*s", (int)n, s);
  rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(rl->mc, name, rl->partitions, 1);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rl->created_topics++;
    cs_info(COMP, "topic %s created with %d partitions (first use)", name, rl->partitions);
  } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    cs_warn(COMP, "creating topic %s: %s", name, rd_kafka_err2str(e));
    return;
  }
  if (rl->nknown < MAX_TOPICS) rl->known[rl->nknown++] = strdup(name);
}

/* A Metadata request: create the topics it names (first use). */
static void metadata_request(relay *rl, uint8_t *frame, size_t len, int16_t ver) {
  rd r = {frame + 12, frame + len, 0}; /* after size, key, version, correlation id */
  int flex = ver >= 9;
  const char *s;
  size_t n;
  rd_str(&r, 0, &s, &n); /* client_id: never compact */
  if (flex) rd_tags(&r);
  int64_t cnt = rd_count(&r, flex);
  for (int64_t i = 0; i < cnt && !r.bad; i++) {
    if (ver >= 10) rd_skip(&r, 16); /* topic id */
    rd_str(&r, flex, &s, &n);
    if (flex) rd_tags(&r);
    if (!r.bad && s) ensure_topic(rl, s, n);
  }
}

/* Metadata response: the brokers' ports. */
static void metadata_response(relay *rl, uint8_t *frame, size_t len, int16_t ver) {
  rd r = {frame + 8, frame + len, 0}; /* after size, correlation id */
  int flex = ver >= 9;
  const char *s;
  size_t n;
  if (flex) rd_tags(&r);
  if (ver >= 3) rd_i32(&r); /* throttle */
  int64_t cnt = rd_count(&r, flex);
  for (int64_t i = 0; i < cnt && !r.bad; i++) {
    rd_i32(&r); /* node id */
    rd_str(&r, flex, &s, &n);
    patch_port(rl, &r);
    if (ver >= 1) rd_str(&r, flex, &s, &n); /* rack */
    if (flex) rd_tags(&r);
  }
}

/* FindCoordinator response: the coordinator's port. */
static void coordinator_response(relay *rl, uint8_t *frame, size_t len, int16_t ver) {
  rd r = {frame + 8, frame + len, 0};
  int flex = ver >= 3;
  const char *s;
  size_t n;
  if (flex) rd_tags(&r);
  if (ver >= 1) rd_i32(&r); /* throttle */
  if (ver >= 4) {
    int64_t cnt = rd_count(&r, 1);
    for (int64_t i = 0; i < cnt && !r.bad; i++) {
      rd_str(&r, 1, &s, &n); /* key */
      rd_i32(&r);            /* node id */
      rd_str(&r, 1, &s, &n); /* host */
      patch_port(rl, &r);
      rd_i16(&r);            /* error code */
      rd_str(&r, 1, &s, &n); /* error message */
      rd_tags(&r);
    }
    return;
  }
  rd_i16(&r); /* error code */
  if (ver >= 1) rd_str(&r, flex, &s, &n);
  rd_i32(&r); /* node id */
  rd_str(&r, flex, &s, &n);
  patch_port(rl, &r);
}

/* ------------------------------------------------------------- relay */

static void conn_close(conn *c);

typedef struct wreq {
  uv_write_t w;
  dir *d;
  size_t n;
  char data[];
} wreq;

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void on_written(uv_write_t *w, int status) {
  wreq *q = (wreq *)w;
  dir *d = q->d;
  d->queued -= q->n;
  if (status < 0) conn_close(d->c);
  if (d->read_paused && d->queued <= LOW_WATER && !d->c->closing) {
    d->read_paused = 0;
    uv_read_start((uv_stream_t *)d->from, on_alloc, on_read);
  }
  free(q);
}

static void forward(dir *d, const uint8_t *p, size_t n) {
  if (!n || d->c->closing) return;
  if (!d->queued) { /* nothing waiting: write what the socket takes now */
    uv_buf_t now = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)d->to, &now, 1);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      if (!n) return;
    } else if (w < 0 && w != UV_EAGAIN) {
      conn_close(d->c);
      return;
    }
  }
  wreq *q = malloc(sizeof *q + n);
  if (!q) {
    conn_close(d->c);
    return;
  }
  memcpy(q->data, p, n);
  q->d = d;
  q->n = n;
  uv_buf_t b = uv_buf_init(q->data, (unsigned)n);
  d->queued += n;
  if (uv_write(&q->w, (uv_stream_t *)d->to, &b, 1, on_written) != 0) {
    d->queued -= n;
    free(q);
    conn_close(d->c);
  }
}

static void pend_add(conn *c, int32_t corr, int16_t key, int16_t ver) {
  if (c->npend == c->cap_pend) {
    size_t nc = c->cap_pend ? c->cap_pend * 2 : 8;
    pend *np = realloc(c->pend, nc * sizeof *np);
    if (!np) return; /* the port is then left as it is */
    c->pend = np;
    c->cap_pend = nc;
  }
  c->pend[c->npend++] = (pend){corr, key, ver};
}

static int pend_take(conn *c, int32_t corr, pend *out) {
  for (size_t i = 0; i < c->npend; i++)
    if (c->pend[i].corr == corr) {
      *out = c->pend[i];
      c->pend[i] = c->pend[--c->npend];
      return 1;
    }
  return 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Walks the frames in d->buf: passes most through as they come, holds
 * the few that are read or rewritten until they are complete. */
static void process(dir *d) {
  conn *c = d->c;
  relay *rl = c->r;
  size_t off = 0;
  while (off < d->len && !c->closing) {
    if (d->pass) {
      size_t n = d->len - off < d->pass ? d->len - off : (size_t)d->pass;
      forward(d, d->buf + off, n);
      off += n;
      d->pass -= n;
      continue;
    }
    size_t avail = d->len - off;
    if (avail < (d->requests ? 12u : 8u)) break;
    uint8_t *f = d->buf + off;
    uint32_t size = be32(f);
    if (size > MAX_FRAME || size < 4) {
      cs_warn(COMP, "closing a connection: bad frame size %u", size);
      conn_close(c);
      return;
    }
    size_t total = (size_t)size + 4;
    pend p = {0, -1, 0};
    int hold = 0;
    if (d->requests) {
      int16_t key = (int16_t)(f[4] << 8 | f[5]), ver = (int16_t)(f[6] << 8 | f[7]);
      int32_t corr = (int32_t)be32(f + 8);
      if (key == API_METADATA || key == API_FIND_COORDINATOR) pend_add(c, corr, key, ver);
      hold = key == API_METADATA;
      p.key = key;
      p.ver = ver;
    } else {
      hold = pend_take(c, (int32_t)be32(f + 4), &p);
    }
    if (!hold) {
      d->pass = total;
      continue;
    }
    if (avail < total) break; /* wait for the whole frame */
    if (d->requests)
      metadata_request(rl, f, total, p.ver);
    else if (p.key == API_METADATA)
      metadata_response(rl, f, total, p.ver);
    else
      coordinator_response(rl, f, total, p.ver);
    forward(d, f, total);
    off += total;
  }
  if (off) {
    memmove(d->buf, d->buf + off, d->len - off);
    d->len -= off;
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  dir *d = h->data;
  size_t want = 65536;
  if (d->cap - d->len < want) {
    size_t nc = d->cap ? d->cap : want;
    while (nc - d->len < want) nc *= 2;
    uint8_t *nb = realloc(d->buf, nc);
    if (!nb) {
      *buf = uv_buf_init(NULL, 0);
      return;
    }
    d->buf = nb;
    d->cap = nc;
  }
  *buf = uv_buf_init((char *)d->buf + d->len, (unsigned)(d->cap - d->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  dir *d = s->data;
  if (n < 0) {
    conn_close(d->c);
    return;
  }
  d->len += (size_t)n;
  process(d);
  if (!d->c->closing && d->queued > HIGH_WATER && !d->read_paused) {
    d->read_paused = 1;
    uv_read_stop(s);
  }
}

static void on_handle_closed(uv_handle_t *h) {
  dir *d = h->data;
  conn *cc = d->c;
  if (++cc->closed_handles < 2) return;
  free(cc->req.buf);
  free(cc->resp.buf);
  free(cc->pend);
  free(cc);
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  relay *rl = c->r;
  if (c->prev)
    c->prev->next = c->next;
  else
    rl->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->client, on_handle_closed);
  uv_close((uv_handle_t *)&c->upstream, on_handle_closed);
}

static void on_upstream(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (c->closing) return;
  if (status < 0) {
    cs_debug(COMP, "broker refused a relayed connection: %s", uv_strerror(status));
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->client, 1);
  uv_tcp_nodelay(&c->upstream, 1);
  uv_read_start((uv_stream_t *)&c->client, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&c->upstream, on_alloc, on_read);
}

static void on_accept(uv_stream_t *server, int status) {
  relay *rl = server->data;
  if (status < 0 || rl->stopping) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->r = rl;
  uv_tcp_init(rl->loop, &c->client);
  uv_tcp_init(rl->loop, &c->upstream);
  c->req = (dir){c, 1, &c->client, &c->upstream, NULL, 0, 0, 0, 0, 0};
  c->resp = (dir){c, 0, &c->upstream, &c->client, NULL, 0, 0, 0, 0, 0};
  c->client.data = &c->req;
  c->upstream.data = &c->resp;
  c->next = rl->conns;
  if (rl->conns) rl->conns->prev = c;
  rl->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
    conn_close(c);
    return;
  }
  rl->accepted++;
  c->connect.data = c;
  if (uv_tcp_connect(&c->connect, &c->upstream, (const struct sockaddr *)&rl->upstream, on_upstream) != 0)
    conn_close(c);
}

/* ----------------------------------------------------------- control */

static int api_key(const char *s) {
  static const struct {
    const char *name;
    int key;
  } apis[] = {{"Produce", 0},       {"Fetch", 1},          {"ListOffsets", 2},     {"Metadata", 3},
              {"OffsetCommit", 8},  {"OffsetFetch", 9},    {"FindCoordinator", 10}, {"JoinGroup", 11},
              {"Heartbeat", 12},    {"LeaveGroup", 13},    {"SyncGroup", 14},      {"ApiVersions", 18},
              {"InitProducerId", 22}};
  for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
    if (strcasecmp(apis[i].name, s) == 0) return apis[i].key;
  char *end;
  long v = strtol(s, &end, 10);
  return *s && !*end && v >= 0 && v < 100 ? (int)v : -1;
}

static int err_code(const char *s, rd_kafka_resp_err_t *out) {
  const struct rd_kafka_err_desc *descs;
  size_t n;
  rd_kafka_get_err_descs(&descs, &n);
  for (size_t i = 0; i < n; i++)
    if (descs[i].name && strcasecmp(descs[i].name, s) == 0) {
      *out = descs[i].code;
      return 0;
    }
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end) return -1;
  *out = (rd_kafka_resp_err_t)v;
  return 0;
}

static void reply(const char *fmt, const char *a) {
  printf(fmt, a);
  putchar('\n');
  fflush(stdout);
}

static void command(relay *rl, char *line) {
  char *argv[6];
  int argc = 0;
  for (char *t = strtok(line, " \t\r"); t && argc < 6; t = strtok(NULL, " \t\r")) argv[argc++] = t;
  if (argc == 0) return;
  rd_kafka_resp_err_t e = 0;
  if (strcmp(argv[0], "down") == 0 && argc == 1) {
    e = rd_kafka_mock_broker_set_down(rl->mc, 1);
  } else if (strcmp(argv[0], "up") == 0 && argc == 1) {
    e = rd_kafka_mock_broker_set_up(rl->mc, 1);
  } else if (strcmp(argv[0], "rtt") == 0 && argc == 2) {
    e = rd_kafka_mock_broker_set_rtt(rl->mc, 1, atoi(argv[1]));
  } else if (strcmp(argv[0], "create") == 0 && argc == 3) {
    int parts = atoi(argv[2]);
    if (parts < 1 || !valid_topic(argv[1], strlen(argv[1]))) return reply("error: bad topic or partition count%s", "");
    e = rd_kafka_mock_topic_create(rl->mc, argv[1], parts, 1);
  } else if (strcmp(argv[0], "errors") == 0 && argc == 4) {
    int key = api_key(argv[1]);
    long cnt = atol(argv[2]);
    rd_kafka_resp_err_t code;
    if (key < 0) return reply("error: unknown API '%s'", argv[1]);
    if (cnt < 1 || cnt > 100000) return reply("error: bad count '%s'", argv[2]);
    if (err_code(argv[3], &code) != 0) return reply("error: unknown error '%s'", argv[3]);
    /* On the broker's own stack, so that `pending` can tell they were used. */
    for (long i = 0; i < cnt && !e; i++) e = rd_kafka_mock_broker_push_request_error_rtts(rl->mc, 1, (int16_t)key, 1, code, 0);
  } else if (strcmp(argv[0], "pending") == 0 && argc == 2) {
    int key = api_key(argv[1]);
    size_t n = 0;
    if (key < 0) return reply("error: unknown API '%s'", argv[1]);
    if ((e = rd_kafka_mock_broker_error_stack_cnt(rl->mc, 1, (int16_t)key, &n)) == 0) {
      printf("ok %zu\n", n);
      fflush(stdout);
      return;
    }
  } else {
    return reply("error: unknown command '%s' (down, up, rtt MS, errors API COUNT ERROR, pending API, create TOPIC N)",
                 argv[0]);
  }
  if (e) return reply("error: %s", rd_kafka_err2str(e));
  cs_info(COMP, "control: %s%s%s", argv[0], argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
  reply("ok %s", argv[0]);
}

static void on_control_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char b[4096];
  *buf = uv_buf_init(b, sizeof b);
}

static void on_control(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  relay *rl = s->data;
  if (n < 0) { /* end of input: no more commands; the broker goes on */
    if (rl->control_open) {
      rl->control_open = 0;
      uv_close((uv_handle_t *)s, NULL);
    }
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      rl->line[rl->line_len] = 0;
      command(rl, rl->line);
      rl->line_len = 0;
    } else if (rl->line_len + 1 < sizeof rl->line) {
      rl->line[rl->line_len++] = ch;
    }
  }
}

/* ------------------------------------------------------------ command */

static void on_signal(uv_signal_t *h, int signum) {
  relay *rl = h->data;
  cs_info(COMP, "%s received: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
  rl->stopping = 1;
  uv_close((uv_handle_t *)&rl->server, NULL);
  while (rl->conns) conn_close(rl->conns);
  if (rl->control_open) {
    rl->control_open = 0;
    uv_close((uv_handle_t *)&rl->control, NULL);
  }
  uv_close((uv_handle_t *)&rl->sigint, NULL);
  uv_close((uv_handle_t *)&rl->sigterm, NULL);
}

static const char usage[] =
    "usage: cstream broker [--port 9092] [--partitions N] [--topic T]... [--control]\n"
    "\n"
    "An in-memory Kafka-protocol broker on 127.0.0.1 (librdkafka's mock cluster) for\n"
    "development and tests; production uses a real Kafka cluster. Data lives only in\n"
    "this process, and each partition keeps only its newest ~5 MiB (older data is\n"
    "trimmed; consumers that fall further behind are told their offset is out of range).\n"
    "\n"
    "  --port N          accept on this port (0: a free one); default 9092\n"
    "  --partitions N    partitions of topics created with --topic or on first use; default 4\n"
    "  --topic T         create topic T at start (repeatable)\n"
    "  --control         read fault-injection commands on stdin: down, up, rtt MS,\n"
    "                    errors API COUNT ERROR, pending API, create TOPIC N\n"
    "                    (one reply line each)\n"
    "\n"
    "Prints 'listening port=N' once ready; SIGINT/SIGTERM stop it (exit 0).\n";

static int parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int cs_broker_command(int argc, char **argv) {
  relay rl;
  memset(&rl, 0, sizeof rl);
  long port = 9092, parts = 4;
  int control = 0;
  const char *topics[64];
  size_t ntopics = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (strcmp(a, "--control") == 0) {
      control = 1;
      continue;
    }
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if ((strcmp(a, "--port") == 0 || strcmp(a, "--partitions") == 0 || strcmp(a, "--topic") == 0) && !val) {
      fprintf(stderr, "cstream: broker: %s needs a value\n%s", a, usage);
      return 2;
    }
    i++;
    if (strcmp(a, "--port") == 0) {
      if (parse_int(val, 0, 65535, &port) != 0) {
        fprintf(stderr, "cstream: broker: --port: '%s' is not a port (0..65535)\n", val);
        return 2;
      }
    } else if (strcmp(a, "--partitions") == 0) {
      if (parse_int(val, 1, 10000, &parts) != 0) {
        fprintf(stderr, "cstream: broker: --partitions: '%s' is not 1..10000\n", val);
        return 2;
      }
    } else if (strcmp(a, "--topic") == 0) {
      if (!valid_topic(val, strlen(val)) || ntopics == sizeof topics / sizeof topics[0]) {
        fprintf(stderr, "cstream: broker: --topic: '%s' is not a valid topic name (or too many topics)\n", val);
        return 2;
      }
      topics[ntopics++] = val;
    } else {
      fprintf(stderr, "cstream: broker: unknown option '%s'\n%s", a, usage);
      return 2;
    }
  }
  cs_err err;
  const char *bs = cs_kafka_embedded(&err);
  if (!bs) {
    fprintf(stderr, "cstream: broker: %s\n", err.msg);
    return 1;
  }
  rl.mc = cs_kafka_embedded_cluster();
  const char *colon = strrchr(bs, ':');
  rl.mock_port = colon ? atoi(colon + 1) : 0;
  rl.partitions = (int)parts;
  uv_ip4_addr("127.0.0.1", rl.mock_port, &rl.upstream);
  for (size_t i = 0; i < ntopics; i++) ensure_topic(&rl, topics[i], strlen(topics[i]));

  uv_loop_t loop;
  uv_loop_init(&loop);
  rl.loop = &loop;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", (int)port, &addr);
  uv_tcp_init(&loop, &rl.server);
  rl.server.data = &rl;
  int rc = uv_tcp_bind(&rl.server, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&rl.server, 128, on_accept);
  if (rc != 0) {
    fprintf(stderr, "cstream: broker: cannot listen on 127.0.0.1:%ld: %s\n", port, uv_strerror(rc));
    uv_close((uv_handle_t *)&rl.server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    for (size_t i = 0; i < rl.nknown; i++) free(rl.known[i]);
    return 1;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&rl.server, (struct sockaddr *)&ss, &len);
  rl.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_signal_init(&loop, &rl.sigint);
  uv_signal_init(&loop, &rl.sigterm);
  rl.sigint.data = rl.sigterm.data = &rl;
  uv_signal_start(&rl.sigint, on_signal, SIGINT);
  uv_signal_start(&rl.sigterm, on_signal, SIGTERM);
  if (control) {
    uv_pipe_init(&loop, &rl.control, 0);
    rl.control.data = &rl;
    if (uv_pipe_open(&rl.control, 0) == 0 && uv_read_start((uv_stream_t *)&rl.control, on_control_alloc, on_control) == 0) {
      rl.control_open = 1;
    } else {
      cs_warn(COMP, "--control: standard input is not a pipe; no commands");
      uv_close((uv_handle_t *)&rl.control, NULL);
    }
  }
  cs_info(COMP,
          "in-memory Kafka broker on 127.0.0.1:%d (relayed to the mock cluster on %d), %ld partitions per new topic; "
          "development and tests only: data is lost at exit and each partition keeps only its newest ~5 MiB",
          rl.port, rl.mock_port, parts);
  printf("listening port=%d\n", rl.port);
  fflush(stdout);
  uv_run(&loop, UV_RUN_DEFAULT);
  cs_info(COMP, "stopped: %llu connections relayed, %llu topics created on first use",
          (unsigned long long)rl.accepted, (unsigned long long)rl.created_topics);
  if (uv_loop_close(&loop) != 0) cs_warn(COMP, "event loop closed with handles still open");
  for (size_t i = 0; i < rl.nknown; i++) free(rl.known[i]);
  return 0;
}
