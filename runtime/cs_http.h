/* cs_http: HTTP requests on the libuv loop, through libcurl's multi
 * interface (multi_socket: libcurl's sockets are watched with uv_poll, its
 * timeouts with a uv_timer). Nothing blocks the loop: name resolution runs
 * in libcurl's resolver thread, connections are kept alive and reused.
 *
 * A cs_http is one client (one curl multi handle, one connection cache);
 * requests on it run concurrently and each completes exactly once, through
 * its callback, unless it is cancelled first. Sinks use it to talk to HTTP
 * services (the ClickHouse sink); it knows nothing about them.
 *
 * Ownership: the request description is copied, except the POST body,
 * which is borrowed and must stay unchanged until the callback has run or
 * the request was cancelled. The response given to the callback (body,
 * headers, error text) is valid only during the call. A cs_http_req handle
 * is invalid once its callback has started or after cs_http_cancel.
 *
 * Life cycle: create -> post/cancel ... -> close. cs_http_close cancels what
 * is still running (no callback is called) and frees the client once libuv
 * has closed its handles, so the loop must run afterwards. It may be called
 * from inside a completion callback. Loop thread only.
 *
 * Uses libcurl (Debian libcurl4-openssl-dev: OpenSSL, system CA store,
 * threaded resolver), libuv, cs_buf, cs_err. SIGPIPE must be ignored by the
 * process (cstream's main does); CURLOPT_NOSIGNAL is set on every request. */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "cs_err.h"

typedef struct cs_http cs_http;
typedef struct cs_http_req cs_http_req;

/* What went wrong below HTTP, already sorted for a caller's retry policy. */
typedef enum {
  CS_HTTP_OK = 0,       /* a complete HTTP response arrived (any status) */
  CS_HTTP_ERR_CONNECT,  /* name not resolved, connection refused/unreachable */
  CS_HTTP_ERR_TIMEOUT,  /* connect or total timeout */
  CS_HTTP_ERR_IO,       /* connection reset, nothing received, send/recv failed */
  CS_HTTP_ERR_TLS,      /* certificate or TLS verification failed */
  CS_HTTP_ERR_CONFIG,   /* bad URL, unsupported scheme, bad CA file, ... */
  CS_HTTP_ERR_TOO_LARGE /* the response body exceeded max_response */
} cs_http_transport;

typedef struct cs_http_request {
  const char *url;            /* http:// or https:// (no other scheme) */
  const char *user;           /* basic auth; NULL: none */
  const char *password;       /* with user; never logged */
  const char *ca_file;        /* https: CA bundle; NULL: the system store */
  const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
  const void *body;           /* POST body (borrowed), may be NULL when body_len is 0 */
  size_t body_len;
  long timeout_ms;         /* whole request; 0: none */
  long connect_timeout_ms; /* 0: libcurl's default */
  size_t max_response;     /* response body limit; 0: 16 MiB */
} cs_http_request;

typedef struct cs_http_response {
  cs_http_transport transport;
  long status;       /* HTTP status; 0 when no response arrived */
  const char *error; /* transport error text; "" when transport == OK */
  const char *body;  /* NUL-terminated; may hold NULs before body_len */
  size_t body_len;
  const char *headers; /* the raw header block of the final response */
  size_t headers_len;
  double seconds; /* total time of the request */
} cs_http_response;

typedef void (*cs_http_done_fn)(void *ud, const cs_http_response *resp);

/* Creates a client on the loop. Returns NULL with a message on failure. */
cs_http *cs_http_create(uv_loop_t *loop, cs_err *err);
/* Cancels every request (no callback is called) and frees the client once
 * the loop has closed its handles. NULL is a no-op. */
void cs_http_close(cs_http *h);

/* Starts a POST. Returns the request (to cancel it), or NULL with a message
 * when it could not be started (the callback is then never called). */
cs_http_req *cs_http_post(cs_http *h, const cs_http_request *rq, cs_http_done_fn done, void *ud, cs_err *err);
/* Stops a running request; its callback is not called. */
void cs_http_cancel(cs_http_req *r);
/* Requests started and not yet completed or cancelled. */
size_t cs_http_pending(const cs_http *h);

/* Copies the value of the response header `name` (case-insensitive,
 * trimmed) into buf (NUL-terminated, cut to size). Returns 1 when found. */
int cs_http_header(const cs_http_response *resp, const char *name, char *buf, size_t size);

#endif
