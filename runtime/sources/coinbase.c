/* cs.coinbase: the live Coinbase WebSocket feed (Exchange or Advanced
 * Trade) as a source, on libwebsockets running on the pipeline's libuv loop
 * (cs_lws).
 *
 * Connection life: resolve the host with uv_getaddrinfo (libwebsockets'
 * own lookup blocks the loop in this Debian build), connect to the numeric
 * address while keeping the host name for SNI, the certificate check and
 * the Host header, send the subscribe message(s) right after the handshake,
 * wait for the `subscriptions` acknowledgement, then stream. Every received
 * text frame (assembled from its fragments) is recorded if asked and handed
 * to the pipeline as one line; the pipeline parses it and tells this source
 * about subscriptions, errors and heartbeats (on_message).
 *
 * Failures — DNS, refused, TLS, closed by the peer (with its close code),
 * no acknowledgement in time, no frame for idle_timeout — end the
 * connection; the source reconnects after an exponential backoff with full
 * jitter (capped by reconnect_max, reset after a connection stayed up for
 * a minute) and subscribes again. Each attempt is logged once with its
 * reason. An `error` before the acknowledgement (a bad product name) is a
 * configuration error: the pipeline stops with the feed's message.
 *
 * A live feed cannot be paused: while the pipeline holds the source back,
 * frames are queued up to max_buffer bytes; beyond that they are dropped,
 * counted and logged. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "cs_buf.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_lws.h"
#include "cs_metrics.h"
#include "cs_parse.h"
#include "cs_plugin.h"
#include "cs_time.h"

#define BACKOFF_BASE_US INT64_C(500000)
#define STABLE_US INT64_C(60000000)

enum { API_EXCHANGE, API_ADVANCED };
typedef enum { ST_IDLE, ST_RESOLVING, ST_CONNECTING, ST_SUBSCRIBING, ST_STREAMING, ST_WAITING, ST_STOPPED } cb_state;

typedef struct queued {
  struct queued *next;
  int64_t recv_us;
  size_t len;
  char data[]; /* + CS_JSON_PADDING */
} queued;

typedef struct coinbase {
  cs_source *src;
  /* options */
  char **products, **channels;
  size_t nproducts, nchannels;
  int api, insecure, deflate;
  char *url, *ca_file, *record;
  int64_t idle_us, subscribe_timeout_us, backoff_max_us;
  size_t max_frame, max_buffer;
  /* the URL, split */
  int tls, port;
  char host[256], path[512];
  /* state */
  uv_loop_t *loop;
  cs_lws *lws;
  struct lws *wsi;
  uv_getaddrinfo_t gai;
  uv_timer_t retry_timer, watchdog, stopper;
  int handles_open;
  cb_state st;
  int stopping, paused;
  int drop_pending; /* close the connection at the next WRITEABLE */
  int exit_on_close;  /* option: a normal close by the server ends the input */
  int close_code;     /* of the server's close frame on this connection; 0: none */
  int ending;         /* the input ends once the queued frames are delivered */
  unsigned attempt;
  int64_t connected_at, last_frame_us, subscribe_sent_us;
  char ip[64];
  char close_reason[160]; /* why the current connection ended */
  cs_buf frame;           /* fragments of the text frame being received */
  int frame_binary, frame_oversize;
  size_t frame_total;
  size_t sub_next; /* subscribe messages still to send */
  uint64_t lineno;
  queued *qhead, *qtail;
  size_t qbytes;
  /* recording */
  char rec_path[1024];
  gzFile rec_gz;
  FILE *rec_plain;
  int64_t rec_flushed_us;
  /* counters (logged at the end) */
  uint64_t connects, frames, binary_frames, oversize_frames, dropped_frames, feed_errors;
  cs_log_limiter lim;
} coinbase;

static const char *default_url(int api) {
  return api == API_ADVANCED ? "wss://advanced-trade-ws.coinbase.com" : "wss://ws-feed.exchange.coinbase.com";
}

static int parse_url(coinbase *c, cs_err *err) {
  const char *u = c->url, *rest;
  if (strncmp(u, "wss://", 6) == 0) {
    c->tls = 1;
    rest = u + 6;
  } else if (strncmp(u, "ws://", 5) == 0) {
    c->tls = 0;
    rest = u + 5;
  } else {
    return cs_err_set(err, "option 'url': '%s' is not a ws:// or wss:// URL", u);
  }
  const char *slash = strchr(rest, '/');
  size_t hostport = slash ? (size_t)(slash - rest) : strlen(rest);
  snprintf(c->path, sizeof c->path, "%s", slash ? slash : "/");
  const char *hp = rest, *colon = NULL;
  size_t hl = hostport;
  if (hp[0] == '[') { /* [v6]:port */
    const char *rb = memchr(hp, ']', hostport);
    if (!rb) return cs_err_set(err, "option 'url': bad IPv6 address in '%s'", u);
    hp++;
    hl = (size_t)(rb - hp);
    if (rb + 1 < rest + hostport && rb[1] == ':') colon = rb + 1;
  } else {
    colon = memchr(hp, ':', hostport);
    if (colon) hl = (size_t)(colon - hp);
  }
  if (hl == 0 || hl >= sizeof c->host) return cs_err_set(err, "option 'url': no host in '%s'", u);
  memcpy(c->host, hp, hl);
  c->host[hl] = 0;
  c->port = c->tls ? 443 : 80;
  if (colon) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end != rest + hostport || port <= 0 || port > 65535)
      return cs_err_set(err, "option 'url': bad port in '%s'", u);
    c->port = (int)port;
  }
  return 0;
}

static void coinbase_free(coinbase *c) {
  if (!c) return;
  cs_opts_list_free(c->products, c->nproducts);
  cs_opts_list_free(c->channels, c->nchannels);
  free(c->url);
  free(c->ca_file);
  free(c->record);
  cs_buf_free(&c->frame);
  for (queued *q = c->qhead, *next; q; q = next) {
    next = q->next;
    free(q);
  }
  free(c);
}

static int has_channel(const coinbase *c, const char *name) {
  for (size_t i = 0; i < c->nchannels; i++)
    if (strcmp(c->channels[i], name) == 0) return 1;
  return 0;
}

static int coinbase_init(cs_source *src, const cs_opts *opts, cs_err *err) {
  coinbase *c = calloc(1, sizeof *c);
  if (!c) return cs_err_set(err, "out of memory");
  c->src = src;
  c->api = strcmp(cs_opts_str(opts, "api"), "advanced") == 0 ? API_ADVANCED : API_EXCHANGE;
  const cs_optval *pv = cs_opts_get(opts, "products"), *cv = cs_opts_get(opts, "channels");
  static char *const def_products[] = {"BTC-USD"};
  static char *const ex_channels[] = {"matches", "heartbeat"};
  static char *const adv_channels[] = {"market_trades", "heartbeats"};
  cs_optval dp = {.set = 1, .list = (char **)def_products, .nlist = 1};
  cs_optval dc = {.set = 1, .list = (char **)(c->api == API_ADVANCED ? adv_channels : ex_channels), .nlist = 2};
  int lists_rc = cs_opts_list_copy(pv->nlist ? pv : &dp, &c->products, &c->nproducts) |
                 cs_opts_list_copy(cv->nlist ? cv : &dc, &c->channels, &c->nchannels);
  const char *url = cs_opts_get(opts, "url")->set ? cs_opts_str(opts, "url") : default_url(c->api);
  c->url = strdup(url);
  if (cs_opts_get(opts, "ca_file")->set) c->ca_file = strdup(cs_opts_str(opts, "ca_file"));
  if (cs_opts_get(opts, "record")->set) c->record = strdup(cs_opts_str(opts, "record"));
  if (lists_rc || !c->url) goto nomem;
  for (size_t i = 0; i < c->nproducts; i++)
    if (!c->products[i] || !c->products[i][0]) {
      cs_err_set(err, "option 'products': product names must be non-empty strings");
      goto fail;
    }
  if (c->nproducts == 0) {
    cs_err_set(err, "option 'products': give at least one product, e.g. {\"BTC-USD\"}");
    goto fail;
  }
  c->insecure = (int)cs_opts_int(opts, "insecure");
  c->deflate = (int)cs_opts_int(opts, "deflate");
  c->exit_on_close = (int)cs_opts_int(opts, "exit_on_close");
  c->subscribe_timeout_us = cs_opts_int(opts, "subscribe_timeout");
  c->backoff_max_us = cs_opts_int(opts, "reconnect_max");
  if (cs_opts_get(opts, "idle_timeout")->set)
    c->idle_us = cs_opts_int(opts, "idle_timeout");
  else /* heartbeats come every second: 5 s of silence is a dead feed */
    c->idle_us = (has_channel(c, "heartbeat") || has_channel(c, "heartbeats")) ? 5 * CS_US_PER_S : 60 * CS_US_PER_S;
  if (c->idle_us < CS_US_PER_S) {
    cs_err_set(err, "option 'idle_timeout': must be at least 1s");
    goto fail;
  }
  if (c->backoff_max_us < 100000) {
    cs_err_set(err, "option 'reconnect_max': must be at least 100ms");
    goto fail;
  }
  int64_t mf = cs_opts_int(opts, "max_frame"), mb = cs_opts_int(opts, "max_buffer");
  if (mf < 1024 || mb < 0) {
    cs_err_set(err, "option '%s': out of range", mf < 1024 ? "max_frame" : "max_buffer");
    goto fail;
  }
  c->max_frame = (size_t)mf;
  c->max_buffer = (size_t)mb;
  if (parse_url(c, err) != 0) goto fail;
  if (c->tls && c->insecure)
    cs_warn(src->label, "INSECURE: TLS certificate verification is OFF for %s (insecure = true); for local testing only",
            c->url);
  if (!c->tls && strcmp(c->host, "127.0.0.1") != 0 && strcmp(c->host, "localhost") != 0 && strcmp(c->host, "::1") != 0)
    cs_warn(src->label, "%s is not encrypted (ws://)", c->url);
  src->ctx = c;
  src->live = 1;
  src->max_skew_us = cs_opts_int(opts, "max_skew");
  cs_log_limiter lim = CS_LOG_LIMITER_INIT;
  c->lim = lim;
  cs_buf_init(&c->frame);
  return 0;
nomem:
  cs_err_set(err, "out of memory");
fail:
  coinbase_free(c);
  return -1;
}

/* ---------------------------------------------------------------- recording */

static int mkdirs(const char *path) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return 0;
}

static void record_close(coinbase *c) {
  if (c->rec_gz) gzclose(c->rec_gz);
  if (c->rec_plain) fclose(c->rec_plain);
  c->rec_gz = NULL;
  c->rec_plain = NULL;
}

/* Writes one received text frame, unchanged, as one line of the file the
 * `record` template names for today (UTC): rotation by date is a change of
 * name. A raw newline inside a frame (never valid inside JSON strings) is
 * written as a space, which keeps the JSON the same and the file one frame
 * per line. */
static void record_frame(coinbase *c, const char *data, size_t len, int64_t now_us) {
  char path[1024];
  time_t secs = (time_t)(now_us / CS_US_PER_S);
  struct tm tm;
  gmtime_r(&secs, &tm);
  if (strftime(path, sizeof path, c->record, &tm) == 0) return;
  if (strcmp(path, c->rec_path) != 0 || (!c->rec_gz && !c->rec_plain)) {
    record_close(c);
    snprintf(c->rec_path, sizeof c->rec_path, "%s", path);
    size_t pl = strlen(path);
    if (mkdirs(path) != 0) {
      cs_log_limited(&c->lim, CS_LOG_ERROR, c->src->label, "record: cannot create the directory of '%s': %s", path,
                     strerror(errno));
      return;
    }
    if (pl > 3 && strcmp(path + pl - 3, ".gz") == 0)
      c->rec_gz = gzopen(path, "ab");
    else
      c->rec_plain = fopen(path, "ab");
    if (!c->rec_gz && !c->rec_plain) {
      cs_log_limited(&c->lim, CS_LOG_ERROR, c->src->label, "record: cannot open '%s': %s", path, strerror(errno));
      return;
    }
    cs_info(c->src->label, "recording to %s", path);
  }
  const char *nl = memchr(data, '\n', len);
  int ok = 1;
  for (size_t off = 0; off < len && ok;) {
    size_t chunk = nl ? (size_t)(nl - (data + off)) : len - off;
    if (c->rec_gz)
      ok = chunk == 0 || gzwrite(c->rec_gz, data + off, (unsigned)chunk) == (int)chunk;
    else
      ok = fwrite(data + off, 1, chunk, c->rec_plain) == chunk;
    off += chunk;
    if (nl && off < len) {
      ok = ok && (c->rec_gz ? gzputc(c->rec_gz, ' ') == ' ' : fputc(' ', c->rec_plain) == ' ');
      off++;
      nl = memchr(data + off, '\n', len - off);
    }
  }
  ok = ok && (c->rec_gz ? gzputc(c->rec_gz, '\n') == '\n' : fputc('\n', c->rec_plain) == '\n');
  if (!ok) cs_log_limited(&c->lim, CS_LOG_ERROR, c->src->label, "record: write to '%s' failed", c->rec_path);
  /* Flush about once a second: a crash loses at most that much. */
  if (now_us - c->rec_flushed_us > CS_US_PER_S) {
    if (c->rec_gz) gzflush(c->rec_gz, Z_SYNC_FLUSH);
    if (c->rec_plain) fflush(c->rec_plain);
    c->rec_flushed_us = now_us;
  }
}

/* ---------------------------------------------------------------- delivery */

static void deliver(coinbase *c, const char *data, size_t len, int64_t recv_us) {
  cs_source *src = c->src;
  src->recv_us = recv_us;
  src->on_line(src->ud, data, len, 1, ++c->lineno, NULL);
}

static void enqueue(coinbase *c, const char *data, size_t len, int64_t recv_us) {
  if (c->qbytes + len > c->max_buffer) {
    c->dropped_frames++;
    cs_log_limited(&c->lim, CS_LOG_WARN, c->src->label,
                   "dropped a %zu-byte frame: the pipeline is held back and %zu bytes are queued already (max_buffer)",
                   len, c->qbytes);
    return;
  }
  queued *q = malloc(sizeof *q + len + CS_JSON_PADDING);
  if (!q) {
    c->dropped_frames++;
    cs_log_limited(&c->lim, CS_LOG_ERROR, c->src->label, "dropped a %zu-byte frame: out of memory", len);
    return;
  }
  q->next = NULL;
  q->recv_us = recv_us;
  q->len = len;
  memcpy(q->data, data, len);
  memset(q->data + len, 0, CS_JSON_PADDING);
  if (c->qtail)
    c->qtail->next = q;
  else
    c->qhead = q;
  c->qtail = q;
  c->qbytes += len;
}

static void drain_queue(coinbase *c) {
  while (c->qhead && !c->paused && !c->stopping) {
    queued *q = c->qhead;
    c->qhead = q->next;
    if (!c->qhead) c->qtail = NULL;
    c->qbytes -= q->len;
    deliver(c, q->data, q->len, q->recv_us);
    free(q);
  }
  if (c->ending == 1 && !c->qhead && !c->paused && !c->stopping) {
    c->ending = 2;
    c->src->on_end(c->src->ud);
  }
}

static void frame_done(coinbase *c) {
  int64_t now = cs_time_wall_us();
  c->frames++;
  if (c->frame_binary) {
    c->binary_frames++;
    char why[96];
    snprintf(why, sizeof why, "binary frame of %zu bytes (the feed sends text)", c->frame_total);
    c->src->recv_us = now;
    c->src->on_line(c->src->ud, NULL, c->frame_total, 0, ++c->lineno, why);
  } else if (c->frame_oversize) {
    c->oversize_frames++;
    char why[96];
    snprintf(why, sizeof why, "frame of %zu bytes is longer than max_frame (%zu)", c->frame_total, c->max_frame);
    c->src->recv_us = now;
    c->src->on_line(c->src->ud, NULL, c->frame_total, 0, ++c->lineno, why);
  } else {
    if (c->record) record_frame(c, c->frame.data ? c->frame.data : "", c->frame.len, now);
    /* cs_buf keeps one spare byte; make room for the parser's padding. */
    size_t len = c->frame.len;
    static const char zeros[CS_JSON_PADDING];
    cs_buf_append(&c->frame, zeros, sizeof zeros);
    if (c->frame.oom) {
      c->frame.oom = 0;
      c->dropped_frames++;
      cs_log_limited(&c->lim, CS_LOG_ERROR, c->src->label, "dropped a frame: out of memory");
    } else if (c->paused || c->qhead) {
      enqueue(c, c->frame.data, len, now);
    } else {
      deliver(c, c->frame.data, len, now);
    }
  }
  cs_buf_reset(&c->frame);
  c->frame_binary = c->frame_oversize = 0;
  c->frame_total = 0;
}

/* ---------------------------------------------------------------- connection */

static void connect_now(coinbase *c);

static void on_retry_timer(uv_timer_t *t) {
  coinbase *c = t->data;
  if (!c->stopping) connect_now(c);
}

/* The connection (or the attempt) ended: log why once, and try again
 * after a backoff with full jitter. */
static void reconnect_later(coinbase *c, const char *why) {
  if (c->stopping) return;
  c->src->connected = 0;
  c->src->reconnects++;
  int64_t now = cs_time_mono_us();
  if (c->connected_at && now - c->connected_at >= STABLE_US) c->attempt = 0; /* it had been stable */
  c->connected_at = 0;
  int64_t cap = BACKOFF_BASE_US << (c->attempt < 16 ? c->attempt : 16);
  if (cap > c->backoff_max_us) cap = c->backoff_max_us;
  int64_t delay = 100000 + (int64_t)((double)rand() / RAND_MAX * (double)(cap - 100000 > 0 ? cap - 100000 : 0));
  c->attempt++;
  c->st = ST_WAITING;
  uv_timer_stop(&c->watchdog);
  cs_warn(c->src->label, "%s; reconnecting in %.1f s (attempt %u)", why, (double)delay / 1e6, c->attempt);
  uv_timer_start(&c->retry_timer, on_retry_timer, (uint64_t)(delay / 1000), 0);
}

/* Ends the current connection from outside an lws callback; the CLOSED
 * callback then schedules the reconnect with `why`. */
static void drop_connection(coinbase *c, const char *why) {
  if (c->drop_pending) return;
  snprintf(c->close_reason, sizeof c->close_reason, "%s", why);
  c->drop_pending = 1;
  /* Closing is done from lws's own WRITEABLE callback (returning -1): a
   * silent peer gives lws no other occasion to act on this connection. */
  if (c->wsi) lws_callback_on_writable(c->wsi);
}

static void on_watchdog(uv_timer_t *t) {
  coinbase *c = t->data;
  if (!c->wsi || c->stopping) return;
  int64_t now = cs_time_mono_us();
  char why[128];
  if (c->st == ST_SUBSCRIBING) {
    /* Until the acknowledgement only its own timeout applies. */
    if (c->subscribe_sent_us && now - c->subscribe_sent_us > c->subscribe_timeout_us) {
      snprintf(why, sizeof why, "no subscriptions acknowledgement within %.0f s", (double)c->subscribe_timeout_us / 1e6);
      drop_connection(c, why);
    }
  } else if (now - c->last_frame_us > c->idle_us) {
    snprintf(why, sizeof why, "idle: no frame for %.0f s", (double)c->idle_us / 1e6);
    drop_connection(c, why);
  }
}

/* WebSocket ping after 10 s without valid traffic, and lws's own hangup
 * after 20 s: a second line of liveness behind the idle watchdog (which
 * acts sooner with heartbeats on). The backoff fields are unused here:
 * reconnection is this source's own. */
static const lws_retry_bo_t ping_policy = {
    .secs_since_valid_ping = 10,
    .secs_since_valid_hangup = 20,
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  coinbase *c = req->data;
  c->handles_open--;
  if (c->stopping) {
    if (res) uv_freeaddrinfo(res);
    return;
  }
  if (status < 0 || !res) {
    char why[320];
    snprintf(why, sizeof why, "DNS lookup of %s failed: %s", c->host, uv_strerror(status));
    if (res) uv_freeaddrinfo(res);
    reconnect_later(c, why);
    return;
  }
  if (res->ai_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, c->ip, sizeof c->ip);
  else
    uv_ip4_name((const struct sockaddr_in *)res->ai_addr, c->ip, sizeof c->ip);
  uv_freeaddrinfo(res);

  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = cs_lws_context(c->lws);
  ci.address = c->ip; /* numeric: no blocking lookup inside lws */
  ci.port = c->port;
  ci.path = c->path;
  ci.host = c->host; /* Host header, SNI and the certificate's name */
  ci.origin = c->host;
  ci.protocol = NULL;
  ci.local_protocol_name = "cstream-coinbase";
  ci.pwsi = &c->wsi;
  ci.opaque_user_data = c;
  ci.retry_and_idle_policy = &ping_policy;
  if (c->tls) {
    ci.ssl_connection = LCCSCF_USE_SSL;
    if (c->insecure)
      ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
                           LCCSCF_ALLOW_INSECURE;
  }
  c->st = ST_CONNECTING;
  c->close_reason[0] = 0;
  c->close_code = 0;
  cs_debug(c->src->label, "connecting to %s (%s port %d)", c->url, c->ip, c->port);
  if (!lws_client_connect_via_info(&ci) && c->st == ST_CONNECTING) {
    c->wsi = NULL;
    reconnect_later(c, "could not start the connection");
  }
}

static void connect_now(coinbase *c) {
  char port[16];
  snprintf(port, sizeof port, "%d", c->port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  c->st = ST_RESOLVING;
  c->gai.data = c;
  int r = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port, &hints);
  if (r != 0) {
    char why[320];
    snprintf(why, sizeof why, "DNS lookup of %s failed: %s", c->host, uv_strerror(r));
    reconnect_later(c, why);
    return;
  }
  c->handles_open++;
}

/* The subscribe message(s): one for the Exchange feed, one per channel for
 * Advanced Trade. */
static int subscribe_message(coinbase *c, size_t i, cs_buf *b) {
  cs_buf_reset(b);
  cs_buf_puts(b, "{\"type\":\"subscribe\",\"product_ids\":[");
  for (size_t k = 0; k < c->nproducts; k++) {
    if (k) cs_buf_append(b, ",", 1);
    cs_buf_json_str(b, c->products[k], strlen(c->products[k]));
  }
  if (c->api == API_EXCHANGE) {
    cs_buf_puts(b, "],\"channels\":[");
    for (size_t k = 0; k < c->nchannels; k++) {
      if (k) cs_buf_append(b, ",", 1);
      cs_buf_json_str(b, c->channels[k], strlen(c->channels[k]));
    }
    cs_buf_puts(b, "]}");
    return i == 0;
  }
  if (i >= c->nchannels) return 0;
  cs_buf_puts(b, "],\"channel\":");
  cs_buf_json_str(b, c->channels[i], strlen(c->channels[i]));
  cs_buf_puts(b, "}");
  return 1;
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  coinbase *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
  if (!c) return lws_callback_http_dummy(wsi, reason, user, in, len);
  switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      char why[320];
      snprintf(why, sizeof why, "connection to %s (%s port %d) failed: %s", c->host, c->ip, c->port,
               in && len ? (const char *)in : (in ? (const char *)in : "unknown error"));
      c->wsi = NULL;
      reconnect_later(c, why);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      c->connects++;
      c->connected_at = c->last_frame_us = cs_time_mono_us();
      c->st = ST_SUBSCRIBING;
      c->drop_pending = 0;
      c->sub_next = 0;
      c->subscribe_sent_us = 0;
      cs_buf_reset(&c->frame);
      c->frame_binary = c->frame_oversize = 0;
      c->frame_total = 0;
      cs_info(c->src->label, "connected to %s (%s)%s", c->url, c->ip, c->connects > 1 ? ", subscribing again" : "");
      uv_timer_start(&c->watchdog, on_watchdog, 250, 250);
      lws_callback_on_writable(wsi);
      return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (c->drop_pending) return -1;
      cs_buf b;
      cs_buf_init(&b);
      cs_buf_append(&b, "", 0);
      char pre[LWS_PRE];
      memset(pre, 0, sizeof pre);
      int more = 0;
      cs_buf msg;
      cs_buf_init(&msg);
      if (subscribe_message(c, c->sub_next, &msg)) {
        cs_buf_append(&b, pre, LWS_PRE);
        cs_buf_append(&b, msg.data, msg.len);
        int n = b.oom ? -1 : lws_write(wsi, (unsigned char *)b.data + LWS_PRE, msg.len, LWS_WRITE_TEXT);
        if (n < (int)msg.len) {
          cs_buf_free(&b);
          cs_buf_free(&msg);
          snprintf(c->close_reason, sizeof c->close_reason, "sending the subscribe message failed");
          return -1;
        }
        cs_debug(c->src->label, "sent %.*s", (int)msg.len, msg.data);
        c->sub_next++;
        c->subscribe_sent_us = cs_time_mono_us();
        more = c->api == API_ADVANCED && c->sub_next < c->nchannels;
      }
      cs_buf_free(&b);
      cs_buf_free(&msg);
      if (more) lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      c->last_frame_us = cs_time_mono_us();
      if (lws_is_first_fragment(wsi)) {
        cs_buf_reset(&c->frame);
        c->frame_total = 0;
        c->frame_oversize = 0;
        c->frame_binary = lws_frame_is_binary(wsi);
      }
      c->frame_total += len;
      if (!c->frame_binary && !c->frame_oversize) {
        if (c->frame_total > c->max_frame) {
          c->frame_oversize = 1;
          cs_buf_reset(&c->frame);
        } else {
          cs_buf_append(&c->frame, in, len);
        }
      }
      if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) frame_done(c);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
      c->last_frame_us = cs_time_mono_us();
      return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      const unsigned char *b = in;
      int code = len >= 2 ? (b[0] << 8 | b[1]) : 1005;
      c->close_code = code;
      snprintf(c->close_reason, sizeof c->close_reason, "closed by the server (code %d%s%.*s)", code,
               len > 2 ? ": " : "", len > 2 ? (int)(len - 2 > 100 ? 100 : len - 2) : 0, len > 2 ? (const char *)b + 2 : "");
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED: {
      c->wsi = NULL;
      if (c->exit_on_close && c->close_code == 1000 && c->st == ST_STREAMING && !c->stopping) {
        /* A replay exchange at the end of its capture: the input ends here
         * (the live feed never closes with 1000 on its own). */
        cs_info(c->src->label, "%s; exit_on_close: the input ends", c->close_reason);
        c->src->connected = 0;
        c->st = ST_WAITING;
        uv_timer_stop(&c->watchdog);
        c->ending = 1;
        drain_queue(c);
        return 0;
      }
      char why[200];
      snprintf(why, sizeof why, "%s", c->close_reason[0] ? c->close_reason : "connection lost (closed without a close frame)");
      if (c->st == ST_SUBSCRIBING && !c->close_reason[0])
        snprintf(why, sizeof why, "connection lost before the subscription was acknowledged");
      reconnect_later(c, why);
      return 0;
    }
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* permessage-deflate (RFC 7692), offered when `deflate` is on. */
static const struct lws_extension extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate, "permessage-deflate; client_max_window_bits"},
    {NULL, NULL, NULL},
};

static const struct lws_protocols protocols[] = {
    /* A large receive buffer: fewer reads and callbacks when frames stream. */
    {"cstream-coinbase", on_lws, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The pipeline parsed a control message. */
static void coinbase_on_message(cs_source *src, const cs_msg_info *info) {
  coinbase *c = src->ctx;
  if (info->kind == CS_MSG_SUBSCRIPTIONS) {
    if (c->st == ST_SUBSCRIBING) {
      c->st = ST_STREAMING;
      src->connected = 1;
      cs_info(src->label, "subscribed to %zu product(s) on %s", c->nproducts, c->url);
    }
  } else if (info->kind == CS_MSG_ERROR) {
    c->feed_errors++;
    char msg[600];
    snprintf(msg, sizeof msg, "the feed sent an error: %s%s%s%s", info->message && info->message[0] ? info->message : "(no message)",
             info->reason && info->reason[0] ? " (" : "", info->reason ? info->reason : "",
             info->reason && info->reason[0] ? ")" : "");
    if (c->st == ST_SUBSCRIBING) {
      /* Before the acknowledgement an error is the subscription's: a bad
       * product or channel. Retrying would not help. */
      cs_error(src->label, "%s", msg);
      c->stopping = 1;
      src->on_fail(src->ud, msg);
      return;
    }
    cs_warn(src->label, "%s", msg);
    drop_connection(c, "the feed sent an error");
  }
}

static void on_stopper(uv_timer_t *t) {
  coinbase *c = t->data;
  cs_lws_stop(c->lws);
  uv_close((uv_handle_t *)&c->retry_timer, NULL);
  uv_close((uv_handle_t *)&c->watchdog, NULL);
  uv_close((uv_handle_t *)&c->stopper, NULL);
}

static int coinbase_start(cs_source *src, uv_loop_t *loop, cs_err *err) {
  coinbase *c = src->ctx;
  c->loop = loop;
  cs_lws_opts o;
  memset(&o, 0, sizeof o);
  o.protocols = protocols;
  o.user = c;
  o.name = src->label;
  o.client_tls = c->tls;
  o.ca_file = c->ca_file;
  o.extensions = c->deflate ? extensions : NULL;
  if (!(c->lws = cs_lws_create(loop, &o, err))) return -1;
  uv_timer_init(loop, &c->retry_timer);
  uv_timer_init(loop, &c->watchdog);
  uv_timer_init(loop, &c->stopper);
  c->retry_timer.data = c->watchdog.data = c->stopper.data = c;
  cs_info(src->label, "connecting to %s for %zu product(s)", c->url, c->nproducts);
  connect_now(c);
  return 0;
}

static void coinbase_pause(cs_source *src) {
  coinbase *c = src->ctx;
  c->paused = 1;
}

static void coinbase_resume(cs_source *src) {
  coinbase *c = src->ctx;
  c->paused = 0;
  drain_queue(c);
}

static void coinbase_stop(cs_source *src) {
  coinbase *c = src->ctx;
  if (c->stopping == 2 || !c->lws) return;
  c->stopping = 2;
  if (c->st == ST_RESOLVING) uv_cancel((uv_req_t *)&c->gai);
  uv_timer_stop(&c->retry_timer);
  uv_timer_stop(&c->watchdog);
  record_close(c);
  if (c->qhead) {
    size_t n = 0;
    for (queued *q = c->qhead; q; q = q->next) n++;
    cs_warn(src->label, "stopping with %zu queued frames (%zu bytes) not delivered", n, c->qbytes);
  }
  cs_info(src->label, "connections %llu, frames %llu, binary %llu, oversize %llu, dropped %llu, feed errors %llu",
          (unsigned long long)c->connects, (unsigned long long)c->frames, (unsigned long long)c->binary_frames,
          (unsigned long long)c->oversize_frames, (unsigned long long)c->dropped_frames,
          (unsigned long long)c->feed_errors);
  /* lws must not be stopped from inside its own callbacks (a sink failure
   * can stop the pipeline while a frame is being delivered): next turn. */
  uv_timer_start(&c->stopper, on_stopper, 0, 0);
}

static void coinbase_destroy(cs_source *src) {
  coinbase *c = src->ctx;
  if (!c) return;
  record_close(c);
  cs_lws_destroy(c->lws);
  coinbase_free(c);
}

static void coinbase_metrics(const cs_source *src, cs_metrics_page *pg, const char *labels) {
  const coinbase *c = src->ctx;
  cs_metrics_counter(pg, "cstream_source_frames_total", "WebSocket frames received", labels, (double)c->frames);
  cs_metrics_counter(pg, "cstream_source_binary_frames_total", "Binary frames received (counted invalid)", labels,
                     (double)c->binary_frames);
  cs_metrics_counter(pg, "cstream_source_oversize_frames_total", "Frames over max_frame (counted invalid)", labels,
                     (double)c->oversize_frames);
  cs_metrics_counter(pg, "cstream_source_dropped_frames_total",
                     "Frames dropped while the pipeline was held back beyond max_buffer", labels,
                     (double)c->dropped_frames);
  cs_metrics_counter(pg, "cstream_source_feed_errors_total", "error messages the feed sent", labels,
                     (double)c->feed_errors);
  cs_metrics_counter(pg, "cstream_source_connections_total", "WebSocket connections established", labels,
                     (double)c->connects);
  cs_metrics_gauge(pg, "cstream_source_queued_bytes", "Bytes of frames queued while the pipeline is held back",
                   labels, (double)c->qbytes);
}

static const cs_optdef coinbase_options[] = {
    {"products", CS_OPT_STRINGS, NULL, 1, NULL, "product ids to subscribe to (default {\"BTC-USD\"})"},
    {"channels", CS_OPT_STRINGS, NULL, 1, NULL,
     "channels (default: matches + heartbeat; advanced: market_trades + heartbeats)"},
    {"api", CS_OPT_ENUM, "exchange", 0, "exchange|advanced", "which Coinbase feed protocol"},
    {"url", CS_OPT_STRING, NULL, 1, NULL,
     "feed URL (default wss://ws-feed.exchange.coinbase.com, or wss://advanced-trade-ws.coinbase.com)"},
    {"ca_file", CS_OPT_STRING, NULL, 1, NULL, "PEM file of the CA to trust instead of the system store"},
    {"insecure", CS_OPT_BOOLEAN, "false", 0, NULL, "turn TLS certificate checks off (local testing only; logged)"},
    {"deflate", CS_OPT_BOOLEAN, "true", 0, NULL, "offer permessage-deflate compression"},
    {"idle_timeout", CS_OPT_DURATION, NULL, 1, NULL,
     "reconnect when no frame arrives for this long (default 5s with heartbeats, else 60s)"},
    {"subscribe_timeout", CS_OPT_DURATION, "10s", 0, NULL, "reconnect when the subscription is not acknowledged"},
    {"reconnect_max", CS_OPT_DURATION, "30s", 0, NULL, "longest wait between reconnection attempts"},
    {"max_skew", CS_OPT_DURATION, "5s", 0, NULL, "a trade stamped further ahead of the wall clock is invalid"},
    {"record", CS_OPT_STRING, NULL, 1, NULL,
     "write every received frame to this file, one per line; strftime patterns (UTC) rotate it, .gz compresses"},
    {"exit_on_close", CS_OPT_BOOLEAN, "false", 0, NULL,
     "end the input when the server closes normally (code 1000, e.g. cstream serve-replay --linger) instead of reconnecting"},
    {"max_frame", CS_OPT_INTEGER, "16777216", 0, NULL, "largest frame accepted, bytes; larger ones are counted invalid"},
    {"max_buffer", CS_OPT_INTEGER, "67108864", 0, NULL,
     "bytes of frames kept while the pipeline is held back; beyond it frames are dropped and counted"},
    {NULL, 0, NULL, 0, NULL, NULL}};

const cs_source_vt cs_source_coinbase = {
    .name = "coinbase",
    .help = "the live Coinbase WebSocket feed (Exchange or Advanced Trade)",
    .options = coinbase_options,
    .init = coinbase_init,
    .start = coinbase_start,
    .pause = coinbase_pause,
    .resume = coinbase_resume,
    .stop = coinbase_stop,
    .destroy = coinbase_destroy,
    .on_message = coinbase_on_message,
    .metrics = coinbase_metrics,
    .frames = 1,
};
