/* cs_http against a small HTTP/1.1 server run on the same libuv loop:
 * bodies both ways (1 MiB up), basic auth, headers, concurrent requests on
 * kept-alive connections, errors below HTTP (refused, timeout, connection
 * dropped, response too large), cancel, and closing the client from inside
 * a completion callback with another request in flight. Under ASan this
 * also checks that every handle and buffer is released (the loop must
 * close cleanly). */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "check.h"
#include "cs_http.h"

static uv_loop_t loop;

/* ------------------------------------------------------------- server */
typedef struct conn {
  uv_tcp_t tcp;
  char *buf;
  size_t len, cap;
  struct conn *next;
} conn;

static uv_tcp_t server;
static int port;
static conn *conns;

static void conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  free(c->buf);
  free(c);
}

static void conn_close(conn *c) {
  for (conn **p = &conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static char *find(char *p, size_t n, const char *s, size_t k) {
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(p + i, s, k) == 0) return p + i;
  return NULL;
}

static void on_written(uv_write_t *w, int status) {
  free(w->data);
  free(w);
}

static void respond(conn *c, int status, const char *extra_headers, const char *body) {
  size_t bl = strlen(body);
  size_t n = bl + strlen(extra_headers) + 200;
  char *out = malloc(n);
  int k = snprintf(out, n, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n%s", status, bl, extra_headers, body);
  uv_write_t *w = malloc(sizeof *w);
  w->data = out;
  uv_buf_t b = uv_buf_init(out, (unsigned)k);
  uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

/* Answers complete requests in the buffer; returns 0 to keep the connection. */
static int serve(conn *c) {
  for (;;) {
    char *end = c->len ? find(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (!end) return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    size_t clen = 0;
    char *cl = find(c->buf, head, "Content-Length: ", 16);
    if (cl) clen = strtoul(cl + 16, NULL, 10);
    if (c->len < head + clen) return 0;
    char path[64] = "";
    sscanf(c->buf, "POST %63s", path);
    char auth[64] = "-";
    char *a = find(c->buf, head, "Authorization: ", 15);
    if (a) sscanf(a + 15, "%*s %63s", auth);
    int expect = find(c->buf, head, "Expect:", 7) != NULL;
    if (strcmp(path, "/drop") == 0) return -1;
    if (strcmp(path, "/echo") == 0) {
      char body[256], hdr[128];
      /* the body's checksum proves it arrived whole */
      unsigned sum = 0;
      for (size_t i = 0; i < clen; i++) sum = sum * 31 + (unsigned char)c->buf[head + i];
      snprintf(body, sizeof body, "len=%zu sum=%u auth=%s expect=%d", clen, sum, auth, expect);
      snprintf(hdr, sizeof hdr, "X-Len: %zu\r\nX-ClickHouse-Exception-Code:  27 \r\n", clen);
      respond(c, 200, hdr, body);
    } else if (strcmp(path, "/error") == 0) {
      respond(c, 500, "", "Code: 27, e.displayText() = DB::Exception: no\n");
    } /* "/hang": no answer */
    memmove(c->buf, c->buf + head + clen, c->len - head - clen);
    c->len -= head + clen;
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  conn *c = h->data;
  if (c->cap - c->len < 65536) {
    c->cap = c->cap * 2 + 65536;
    c->buf = realloc(c->buf, c->cap);
  }
  *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *c = s->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)n;
  if (serve(c) != 0) conn_close(c);
}

static void on_connection(uv_stream_t *s, int status) {
  conn *c = calloc(1, sizeof *c);
  uv_tcp_init(&loop, &c->tcp);
  c->tcp.data = c;
  c->next = conns;
  conns = c;
  uv_accept(s, (uv_stream_t *)&c->tcp);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void server_start(void) {
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(&loop, &server);
  uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  uv_listen((uv_stream_t *)&server, 16, on_connection);
  int len = sizeof addr;
  uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
  port = ntohs(addr.sin_port);
}

static void server_stop(void) {
  while (conns) conn_close(conns);
  uv_close((uv_handle_t *)&server, NULL);
}

/* ------------------------------------------------------------- client */
typedef struct result {
  int called;
  cs_http_transport transport;
  long status;
  char body[512];
  char header[64];
  int has_header;
} result;

static int pending;

static void on_done(void *ud, const cs_http_response *r) {
  result *res = ud;
  res->called++;
  res->transport = r->transport;
  res->status = r->status;
  snprintf(res->body, sizeof res->body, "%s", r->transport == CS_HTTP_OK ? r->body : r->error);
  res->has_header = cs_http_header(r, "x-clickhouse-exception-code", res->header, sizeof res->header);
  pending--;
}

static char url[128];

static cs_http_req *post(cs_http *h, const char *path, const void *body, size_t len, long timeout_ms, result *res) {
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  cs_http_request rq = {0};
  rq.url = url;
  rq.body = body;
  rq.body_len = len;
  rq.timeout_ms = timeout_ms;
  rq.user = "u";
  rq.password = "p";
  cs_err err;
  cs_http_req *r = cs_http_post(h, &rq, on_done, res, &err);
  if (!CHECK(r != NULL)) fprintf(stderr, "post: %s\n", err.msg);
  pending++;
  return r;
}

static void run_until_done(void) {
  while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
}

static void test_requests(void) {
  cs_err err;
  cs_http *h = cs_http_create(&loop, &err);
  if (!CHECK(h != NULL)) return;
  /* A 1 MiB body, basic auth, no 100-continue round trip, a header. */
  size_t big = 1 << 20;
  char *body = malloc(big);
  unsigned sum = 0;
  for (size_t i = 0; i < big; i++) {
    body[i] = (char)('a' + i % 26);
    sum = sum * 31 + (unsigned char)body[i];
  }
  result r1 = {0};
  post(h, "/echo", body, big, 10000, &r1);
  run_until_done();
  char want[128];
  snprintf(want, sizeof want, "len=%zu sum=%u auth=dTpw expect=0", big, sum); /* base64("u:p") */
  CHECK_EQ_INT(r1.called, 1);
  CHECK_EQ_INT(r1.transport, CS_HTTP_OK);
  CHECK_EQ_INT(r1.status, 200);
  CHECK_EQ_STR(r1.body, want);
  CHECK(r1.has_header);
  CHECK_EQ_STR(r1.header, "27");
  free(body);

  /* Concurrent requests, an error status, an empty body. */
  result r[4] = {{0}};
  post(h, "/echo", "x", 1, 10000, &r[0]);
  post(h, "/error", "y", 1, 10000, &r[1]);
  post(h, "/echo", NULL, 0, 10000, &r[2]);
  post(h, "/echo", "abc", 3, 10000, &r[3]);
  CHECK_EQ_UINT(cs_http_pending(h), 4);
  run_until_done();
  CHECK_EQ_UINT(cs_http_pending(h), 0);
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(r[i].called, 1);
  CHECK_EQ_INT(r[1].status, 500);
  CHECK_EQ_STR(r[1].body, "Code: 27, e.displayText() = DB::Exception: no\n");
  CHECK(!r[1].has_header);
  CHECK_EQ_STR(r[2].body, "len=0 sum=0 auth=dTpw expect=0");
  CHECK(strncmp(r[3].body, "len=3 ", 6) == 0);

  /* Below HTTP: a timeout, a dropped connection, a too large answer. */
  result t = {0}, d = {0}, big_r = {0};
  post(h, "/hang", "z", 1, 200, &t);
  post(h, "/drop", "z", 1, 10000, &d);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
  cs_http_request rq = {0};
  rq.url = url;
  rq.body = "q";
  rq.body_len = 1;
  rq.max_response = 4;
  CHECK(cs_http_post(h, &rq, on_done, &big_r, &err) != NULL);
  pending++;
  run_until_done();
  CHECK_EQ_INT(t.transport, CS_HTTP_ERR_TIMEOUT);
  CHECK_EQ_INT(d.transport, CS_HTTP_ERR_IO);
  CHECK_EQ_INT(big_r.transport, CS_HTTP_ERR_TOO_LARGE);
  CHECK_EQ_INT(t.status, 0);

  /* A bad URL fails at once or in its callback, never silently. */
  result bad = {0};
  rq.url = "ftp://127.0.0.1/x";
  rq.max_response = 0;
  cs_http_req *br = cs_http_post(h, &rq, on_done, &bad, &err);
  if (br) {
    pending++;
    run_until_done();
    CHECK_EQ_INT(bad.transport, CS_HTTP_ERR_CONFIG);
  }
  cs_http_close(h);
}

static void test_refused(void) {
  cs_err err;
  cs_http *h = cs_http_create(&loop, &err);
  /* A port nobody listens on: bind one, note it, close it. */
  uv_tcp_t tmp;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(&loop, &tmp);
  uv_tcp_bind(&tmp, (const struct sockaddr *)&addr, 0);
  int len = sizeof addr;
  uv_tcp_getsockname(&tmp, (struct sockaddr *)&addr, &len);
  uv_close((uv_handle_t *)&tmp, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(addr.sin_port));
  cs_http_request rq = {0};
  rq.url = url;
  result r = {0};
  CHECK(cs_http_post(h, &rq, on_done, &r, &err) != NULL);
  pending++;
  run_until_done();
  CHECK_EQ_INT(r.transport, CS_HTTP_ERR_CONNECT);
  CHECK(strlen(r.body) > 0);
  cs_http_close(h);
}

/* Cancel: the callback is never called. */
static cs_http_req *to_cancel;
static cs_http *cancel_h;
static void on_cancel_timer(uv_timer_t *t) {
  cs_http_cancel(to_cancel);
  pending--;
  uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(void) {
  cs_err err;
  cancel_h = cs_http_create(&loop, &err);
  result r = {0};
  to_cancel = post(cancel_h, "/hang", "x", 1, 10000, &r);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, on_cancel_timer, 50, 0);
  run_until_done();
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_EQ_INT(r.called, 0);
  CHECK_EQ_UINT(cs_http_pending(cancel_h), 0);
  cs_http_close(cancel_h);
}

/* Closing the client from inside a callback, another request in flight. */
static cs_http *close_h;
static result hang_r;
static void on_done_close(void *ud, const cs_http_response *r) {
  on_done(ud, r);
  cs_http_close(close_h);
  pending--; /* the hanging request is cancelled by the close */
}

static void test_close_in_callback(void) {
  cs_err err;
  close_h = cs_http_create(&loop, &err);
  post(close_h, "/hang", "x", 1, 10000, &hang_r);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
  cs_http_request rq = {0};
  rq.url = url;
  result r = {0};
  CHECK(cs_http_post(close_h, &rq, on_done_close, &r, &err) != NULL);
  pending++;
  run_until_done();
  CHECK_EQ_INT(r.called, 1);
  CHECK_EQ_INT(hang_r.called, 0);
  cs_http_close(NULL); /* a no-op */
}

int main(void) {
  uv_loop_init(&loop);
  server_start();
  test_requests();
  test_refused();
  test_cancel();
  test_close_in_callback();
  server_stop();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  return CHECK_DONE();
}
