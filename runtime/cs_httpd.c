/* cs_httpd: a minimal HTTP/1.1 server on the libuv loop (see cs_httpd.h). */
#include "cs_httpd.h"

#include <stdlib.h>
#include <string.h>

#include "cs_log.h"

#define DRAIN_MS 2000 /* after the response: how long a client may keep sending */

typedef enum { C_READING, C_WRITING, C_DRAINING, C_CLOSING } conn_state;

typedef struct conn {
  struct conn *prev, *next;
  cs_httpd *s;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wr;
  uv_shutdown_t sd;
  conn_state st;
  int handles; /* of tcp and timer, still open */
  size_t len;
  cs_buf out;
  char head[CS_HTTPD_MAX_HEAD + 1];
} conn;

struct cs_httpd {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port, closing, handles; /* handles: the listener's + every connection's */
  size_t nconns;
  conn *conns;
  cs_httpd_handler handler;
  void *ud;
};

static void maybe_free(cs_httpd *s) {
  if (s->closing && s->handles == 0) free(s);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  conn *c = h->data;
  cs_httpd *s = c->s;
  s->handles--;
  if (--c->handles > 0) return;
  cs_buf_free(&c->out);
  free(c);
  maybe_free(s);
}

static void conn_close(conn *c) {
  if (c->st == C_CLOSING) return;
  c->st = C_CLOSING;
  cs_httpd *s = c->s;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_timeout(uv_timer_t *t) { conn_close(t->data); }

static const char *reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = req->data;
  if (c->st == C_CLOSING) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  /* The client closes (EOF in on_read) or the drain timer fires. */
  c->st = C_DRAINING;
  uv_timer_start(&c->timer, on_timeout, DRAIN_MS, 0);
}

static void on_written(uv_write_t *req, int status) {
  conn *c = req->data;
  if (c->st == C_CLOSING) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  c->sd.data = c;
  if (uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

static void respond(conn *c, int head_only, cs_httpd_response *r) {
  cs_buf *o = &c->out;
  cs_buf_printf(o,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n",
                r->status, reason_phrase(r->status),
                r->content_type ? r->content_type : "text/plain; charset=utf-8", r->body.len);
  if (r->status == 405) cs_buf_puts(o, "Allow: GET, HEAD\r\n");
  cs_buf_puts(o, "\r\n");
  if (!head_only) cs_buf_append(o, r->body.data, r->body.len);
  cs_buf_free(&r->body);
  if (o->oom) {
    conn_close(c);
    return;
  }
  c->st = C_WRITING;
  uv_timer_stop(&c->timer);
  uv_timer_start(&c->timer, on_timeout, CS_HTTPD_TIMEOUT_MS, 0);
  uv_buf_t b = uv_buf_init(o->data, (unsigned)o->len);
  c->wr.data = c;
  if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) conn_close(c);
}

static void simple(conn *c, int head_only, int status, const char *text) {
  cs_httpd_response r = {status, NULL, {0}};
  cs_buf_init(&r.body);
  cs_buf_puts(&r.body, text);
  respond(c, head_only, &r);
}

/* The request head is complete in c->head[0..len). */
static void handle(conn *c) {
  char *line_end = strstr(c->head, "\r\n");
  *line_end = 0;
  /* METHOD SP request-target SP HTTP/1.x */
  char *sp1 = strchr(c->head, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || sp1 == c->head || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ')) {
    simple(c, 0, 400, "bad request line\n");
    return;
  }
  *sp1 = *sp2 = 0;
  const char *method = c->head, *target = sp1 + 1, *version = sp2 + 1;
  if (strncmp(version, "HTTP/1.", 7) != 0 || (version[7] != '0' && version[7] != '1') || version[8]) {
    simple(c, 0, strncmp(version, "HTTP/", 5) == 0 ? 505 : 400, "HTTP/1.0 or HTTP/1.1 only\n");
    return;
  }
  int head_only = strcmp(method, "HEAD") == 0;
  if (!head_only && strcmp(method, "GET") != 0) {
    simple(c, 0, 405, "GET or HEAD only\n");
    return;
  }
  if (target[0] != '/') {
    simple(c, head_only, 400, "the request target must be a path\n");
    return;
  }
  char *q = strpbrk(sp1 + 1, "?#");
  if (q) *q = 0;
  cs_httpd_response r = {200, NULL, {0}};
  cs_buf_init(&r.body);
  c->s->handler(c->s->ud, method, target, &r);
  respond(c, head_only, &r);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  if (c->st != C_READING) c->len = 0; /* draining: reuse the buffer */
  buf->base = c->head + c->len;
  buf->len = CS_HTTPD_MAX_HEAD - c->len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  conn *c = st->data;
  (void)buf;
  if (c->st == C_CLOSING) return;
  if (n < 0) { /* EOF or error: the client is done */
    conn_close(c);
    return;
  }
  if (c->st != C_READING) return; /* response under way, or draining: drop */
  size_t from = c->len > 3 ? c->len - 3 : 0;
  c->len += (size_t)n;
  c->head[c->len] = 0;
  if (memchr(c->head, 0, c->len)) {
    simple(c, 0, 400, "NUL byte in the request\n");
    return;
  }
  if (strstr(c->head + from, "\r\n\r\n")) {
    handle(c);
    return;
  }
  if (c->len >= CS_HTTPD_MAX_HEAD) simple(c, 0, 431, "request head too long\n");
}

static void on_connection(uv_stream_t *ls, int status) {
  cs_httpd *s = ls->data;
  if (status < 0 || s->closing) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->s = s;
  cs_buf_init(&c->out);
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  s->handles += 2;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || s->nconns > CS_HTTPD_MAX_CONNS) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_timeout, CS_HTTPD_TIMEOUT_MS, 0);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

static void on_listener_closed(uv_handle_t *h) {
  cs_httpd *s = h->data;
  s->handles--;
  maybe_free(s);
}

cs_httpd *cs_httpd_create(uv_loop_t *loop, const char *host, int port, cs_httpd_handler handler, void *ud,
                          cs_err *err) {
  struct sockaddr_storage addr;
  if (!host || !host[0]) host = "127.0.0.1";
  int r = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                            : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (r != 0) {
    cs_err_set(err, "'%s' is not a numeric IPv4 or IPv6 address", host);
    return NULL;
  }
  if (port < 0 || port > 65535) {
    cs_err_set(err, "port %d is out of range", port);
    return NULL;
  }
  cs_httpd *s = calloc(1, sizeof *s);
  if (!s) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->handler = handler;
  s->ud = ud;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->handles = 1;
  r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
  if (r != 0) {
    cs_err_set(err, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    return NULL;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
  s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
  return s;
}

int cs_httpd_port(const cs_httpd *s) { return s->port; }

void cs_httpd_close(cs_httpd *s) {
  if (!s || s->closing) return;
  s->closing = 1;
  while (s->conns) conn_close(s->conns);
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
