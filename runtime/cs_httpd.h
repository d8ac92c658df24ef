/* cs_httpd: a minimal HTTP/1.1 server on the libuv loop, for cstream's own
 * operational endpoints (/metrics, /healthz; cs_metrics).
 *
 * It answers GET and HEAD, one request per connection: it reads the request
 * head (at most CS_HTTPD_MAX_HEAD bytes, within CS_HTTPD_TIMEOUT_MS), calls
 * the handler once, writes the response with Content-Length and
 * `Connection: close`, then shuts the connection down gracefully (FIN, and
 * whatever the client still sends is read and dropped until it closes, so
 * the response is never cut by a reset). Other methods get 405, a request
 * that is not HTTP/1.x 400, a head that is too long 431. At most
 * CS_HTTPD_MAX_CONNS connections are open; more are closed at once.
 * Request bodies are not read (these endpoints take none).
 *
 * Why not libwebsockets' HTTP server: see docs/operations.md ("Why a small
 * HTTP server"). Uses libuv, cs_buf, cs_log. Loop thread only. */
#ifndef CS_HTTPD_H
#define CS_HTTPD_H

#include <uv.h>

#include "cs_buf.h"
#include "cs_err.h"

#define CS_HTTPD_MAX_HEAD 8192
#define CS_HTTPD_MAX_CONNS 64
#define CS_HTTPD_TIMEOUT_MS 10000

typedef struct cs_httpd_response {
  int status;               /* default 200 */
  const char *content_type; /* default "text/plain; charset=utf-8"; static string */
  cs_buf body;              /* the handler appends the body (HEAD: sent without it) */
} cs_httpd_response;

/* Called once per well-formed GET/HEAD request. `path` is the request
 * target without its query string, NUL-terminated; `method` is "GET" or
 * "HEAD". Both are valid during the call only. */
typedef void (*cs_httpd_handler)(void *ud, const char *method, const char *path, cs_httpd_response *resp);

typedef struct cs_httpd cs_httpd;

/* Listens on host:port (a numeric IPv4 or IPv6 address; port 0: the kernel
 * picks one, see cs_httpd_port). NULL with err when it cannot (address in
 * use, bad address). The handler's ud must outlive the server. */
cs_httpd *cs_httpd_create(uv_loop_t *loop, const char *host, int port, cs_httpd_handler handler, void *ud,
                          cs_err *err);
int cs_httpd_port(const cs_httpd *s);
/* Stops listening and closes every connection; the server frees itself
 * once libuv has closed its handles (let the loop run). The handler is not
 * called any more. NULL is a no-op. */
void cs_httpd_close(cs_httpd *s);

#endif
