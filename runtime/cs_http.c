#include "cs_http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cs_buf.h"

#define DEFAULT_MAX_RESPONSE (16u << 20)

/* One socket libcurl asked us to watch. Closed (uv_close) when libcurl says
 * CURL_POLL_REMOVE, which it does before it closes the socket: the fd
 * number can be reused at once, by libcurl or by any other handle. */
typedef struct sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct cs_http *h;
  struct sock *prev, *next; /* open sockets, for close */
} sock;

struct cs_http_req {
  struct cs_http *h;
  CURL *easy;
  struct curl_slist *hdrs;
  cs_buf body, headers;
  size_t max_response;
  int too_large;
  char errbuf[CURL_ERROR_SIZE];
  cs_http_done_fn done;
  void *ud;
  struct cs_http_req *prev, *next;
};

struct cs_http {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  int handles;     /* uv handles not closed yet: the timer and the polls */
  int closing;     /* cs_http_close was called */
  int dispatching; /* inside check_done: completion callbacks may run */
  size_t pending;
  cs_http_req *reqs;
  sock *socks;
};

static int global_ready;

static void global_init(void) {
  if (global_ready) return;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  atexit(curl_global_cleanup);
  global_ready = 1;
}

/* ---------------------------------------------------------------- freeing */
static void maybe_free(cs_http *h) {
  if (h->closing && h->handles == 0 && !h->dispatching) free(h);
}

static void on_handle_closed(uv_handle_t *hd) {
  cs_http *h = hd->data;
  h->handles--;
  maybe_free(h);
}

static void on_sock_closed(uv_handle_t *hd) {
  sock *s = hd->data;
  cs_http *h = s->h;
  free(s);
  h->handles--;
  maybe_free(h);
}

static void sock_close(sock *s) {
  cs_http *h = s->h;
  if (s->prev)
    s->prev->next = s->next;
  else
    h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  uv_poll_stop(&s->poll); /* removes the fd from epoll now, before libcurl closes it */
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void req_unlink(cs_http_req *r) {
  cs_http *h = r->h;
  if (r->prev)
    r->prev->next = r->next;
  else
    h->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  h->pending--;
}

static void req_free(cs_http_req *r) {
  if (!r) return;
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  cs_buf_free(&r->body);
  cs_buf_free(&r->headers);
  free(r);
}

/* -------------------------------------------------------- libcurl -> uv */
static void check_done(cs_http *h);

static void on_poll(uv_poll_t *p, int status, int events) {
  sock *s = p->data;
  cs_http *h = s->h;
  int flags = 0, running;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  curl_multi_socket_action(h->multi, s->fd, flags, &running);
  check_done(h);
}

static void on_timer(uv_timer_t *t) {
  cs_http *h = t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  cs_http *h = userp;
  sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(h->multi, fd, NULL);
      sock_close(s);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->fd = fd;
    s->h = h;
    s->poll.data = s;
    h->handles++;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    curl_multi_assign(h->multi, fd, s);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&s->poll, ev, on_poll);
  return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  cs_http *h = userp;
  if (timeout_ms < 0)
    uv_timer_stop(&h->timer);
  else /* 0 too: libcurl must not be re-entered from its own callback */
    uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

/* ------------------------------------------------------------ responses */
static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  cs_http_req *r = ud;
  size_t len = size * n;
  if (r->body.len + len > r->max_response) {
    r->too_large = 1;
    return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
  }
  cs_buf_append(&r->body, p, len);
  return r->body.oom ? 0 : len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  cs_http_req *r = ud;
  size_t len = size * n;
  /* A new status line (after 100 Continue or a redirect) starts a new block. */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) cs_buf_reset(&r->headers);
  if (r->headers.len + len <= 65536) cs_buf_append(&r->headers, p, len);
  return len;
}

static cs_http_transport transport_of(CURLcode c, int too_large) {
  if (too_large) return CS_HTTP_ERR_TOO_LARGE;
  switch (c) {
    case CURLE_OK: return CS_HTTP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return CS_HTTP_ERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT: return CS_HTTP_ERR_TIMEOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return CS_HTTP_ERR_TLS;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_CIPHER:
    case CURLE_LOGIN_DENIED: return CS_HTTP_ERR_CONFIG;
    default: return CS_HTTP_ERR_IO;
  }
}

static void check_done(cs_http *h) {
  CURLMsg *m;
  int left;
  h->dispatching++;
  while (!h->closing && (m = curl_multi_info_read(h->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode code = m->data.result;
    cs_http_req *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    curl_multi_remove_handle(h->multi, easy);
    req_unlink(r);
    cs_http_response resp = {0};
    resp.transport = transport_of(code, r->too_large);
    if (resp.transport == CS_HTTP_OK) {
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
      resp.error = "";
    } else if (resp.transport == CS_HTTP_ERR_TOO_LARGE) {
      resp.error = "response body too large";
    } else {
      resp.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
    }
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &resp.seconds);
    if (r->body.oom && resp.transport == CS_HTTP_OK) {
      resp.transport = CS_HTTP_ERR_IO;
      resp.error = "out of memory reading the response";
    }
    cs_buf_append(&r->body, "", 0); /* NUL-terminates an empty body too */
    resp.body = r->body.data ? r->body.data : "";
    resp.body_len = r->body.len;
    resp.headers = r->headers.data ? r->headers.data : "";
    resp.headers_len = r->headers.len;
    r->done(r->ud, &resp);
    req_free(r);
  }
  h->dispatching--;
  maybe_free(h);
}

/* ------------------------------------------------------------------ API */
cs_http *cs_http_create(uv_loop_t *loop, cs_err *err) {
  global_init();
  cs_http *h = calloc(1, sizeof *h);
  if (!h) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  h->loop = loop;
  if (!(h->multi = curl_multi_init())) {
    free(h);
    cs_err_set(err, "libcurl: cannot create a multi handle");
    return NULL;
  }
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->handles = 1;
  return h;
}

void cs_http_close(cs_http *h) {
  if (!h || h->closing) return;
  h->closing = 1;
  while (h->reqs) cs_http_cancel(h->reqs);
  /* Closes the cached connections; libcurl reports them CURL_POLL_REMOVE. */
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  while (h->socks) sock_close(h->socks);
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}

size_t cs_http_pending(const cs_http *h) { return h ? h->pending : 0; }

void cs_http_cancel(cs_http_req *r) {
  if (!r) return;
  cs_http *h = r->h;
  curl_multi_remove_handle(h->multi, r->easy);
  req_unlink(r);
  req_free(r);
}

cs_http_req *cs_http_post(cs_http *h, const cs_http_request *rq, cs_http_done_fn done, void *ud, cs_err *err) {
  if (h->closing) {
    cs_err_set(err, "HTTP client closed");
    return NULL;
  }
  cs_http_req *r = calloc(1, sizeof *r);
  if (!r) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  cs_buf_init(&r->body);
  cs_buf_init(&r->headers);
  r->h = h;
  r->done = done;
  r->ud = ud;
  r->max_response = rq->max_response ? rq->max_response : DEFAULT_MAX_RESPONSE;
  if (!(r->easy = curl_easy_init())) {
    cs_err_set(err, "libcurl: cannot create a request");
    goto error;
  }
  CURL *e = r->easy;
  /* "Expect:" off: no 100-continue round trip before large bodies. */
  if (!(r->hdrs = curl_slist_append(NULL, "Expect:"))) goto oom;
  for (size_t i = 0; rq->headers && rq->headers[i]; i++) {
    struct curl_slist *n = curl_slist_append(r->hdrs, rq->headers[i]);
    if (!n) goto oom;
    r->hdrs = n;
  }
  CURLcode c = CURLE_OK;
#define SET(opt, val) \
  if (c == CURLE_OK) c = curl_easy_setopt(e, opt, val)
  SET(CURLOPT_URL, rq->url);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_POST, 1L);
  SET(CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
  SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
  SET(CURLOPT_HTTPHEADER, r->hdrs);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, r);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, r);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_PRIVATE, (char *)r);
  SET(CURLOPT_TCP_NODELAY, 1L);
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  if (rq->timeout_ms > 0) SET(CURLOPT_TIMEOUT_MS, rq->timeout_ms);
  if (rq->connect_timeout_ms > 0) SET(CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
  if (rq->user) {
    SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    SET(CURLOPT_USERNAME, rq->user);
    SET(CURLOPT_PASSWORD, rq->password ? rq->password : "");
  }
  if (rq->ca_file) SET(CURLOPT_CAINFO, rq->ca_file);
#undef SET
  if (c != CURLE_OK) {
    cs_err_set(err, "libcurl: %s", curl_easy_strerror(c));
    goto error;
  }
  CURLMcode mc = curl_multi_add_handle(h->multi, e);
  if (mc != CURLM_OK) {
    cs_err_set(err, "libcurl: %s", curl_multi_strerror(mc));
    goto error;
  }
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  h->pending++;
  return r;
oom:
  cs_err_set(err, "out of memory");
error:
  req_free(r);
  return NULL;
}

int cs_http_header(const cs_http_response *resp, const char *name, char *buf, size_t size) {
  size_t nl = strlen(name);
  const char *p = resp->headers, *end = resp->headers + resp->headers_len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
      const char *v = p + nl + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      size_t n = (size_t)(ve - v);
      if (size) {
        if (n >= size) n = size - 1;
        memcpy(buf, v, n);
        buf[n] = 0;
      }
      return 1;
    }
    p = eol + 1;
  }
  return 0;
}
