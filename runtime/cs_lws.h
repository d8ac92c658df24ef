/* cs_lws: a libwebsockets (Debian 4.1.6) context running on cstream's own
 * libuv loop, for WebSocket servers (the replay exchange, cs_exchange) and
 * clients (the cs.coinbase source).
 *
 * Uses libwebsockets with its libuv event-library plugin
 * (libwebsockets-evlib-uv, dlopen'ed by lws when the context is created;
 * `ldd` does not show it): LWS_SERVER_OPTION_LIBUV with `foreign_loops`
 * pointing at the caller's loop. lws installs no signal handler on a
 * foreign loop. lws's own log lines are routed to cs_log, component "lws"
 * (errors as warnings; the rest at --log-level debug).
 *
 * Creation: the context is made without a vhost
 * (LWS_SERVER_OPTION_EXPLICIT_VHOSTS), then one vhost named "default" that
 * listens (server) or carries the outgoing connections (client). Reason:
 * when lws_create_context() fails while making its default vhost (a port in
 * use, a certificate that does not load), lws 4.1.6 frees the context but
 * leaves its uv_idle/uv_timer/uv_poll handles on the foreign loop, which
 * then touches freed memory; a failed lws_create_vhost() leaves a sound
 * context that is torn down as below.
 *
 * Teardown on a foreign loop takes two steps, because libuv closes handles
 * asynchronously (what lws 4.1.6 does, read in its lib/core/context.c and
 * lib/event-libs/libuv/libuv.c, and checked under ASan/LeakSanitizer):
 *
 *   1. cs_lws_stop(): the first lws_context_destroy(). It closes every
 *      connection and the listening socket (uv_close on their uv_poll
 *      handles) and the vhost protocols get their DESTROY callbacks. When
 *      the last connection's close callback has run, lws closes its own
 *      uv_idle and uv_timer. The context itself is NOT freed: on a foreign
 *      loop lws waits to be called again.
 *   2. The caller lets the loop run (for a plugin: `stop` closes handles,
 *      `destroy` runs after the loop drained them; in a command: uv_run
 *      returns once nothing is left).
 *   3. cs_lws_destroy(): the second lws_context_destroy(), which frees the
 *      vhosts, the TLS contexts and the context, and dlclose()s the evlib
 *      plugin. Calling it before step 2 would free memory that pending uv
 *      close callbacks still use, and would unload the code of those
 *      callbacks. After it, uv_loop_close() on the caller's loop succeeds.
 * cs_lws_destroy() without a prior cs_lws_stop() (error paths) does step 1
 * and then runs the loop with UV_RUN_NOWAIT a few turns to let lws's
 * handles close: other handles' callbacks may run then.
 *
 * Call cs_lws_stop() from a libuv callback (timer, idle, signal) or outside
 * the loop, not from inside an lws protocol callback.
 *
 * Ownership: the protocols array, the cert/key/CA path strings and `user`
 * belong to the caller and must outlive the cs_lws. Single thread: the loop
 * thread only. */
#ifndef CS_LWS_H
#define CS_LWS_H

#include <libwebsockets.h>
#include <uv.h>

#include "cs_err.h"

typedef struct cs_lws_opts {
  const struct lws_protocols *protocols; /* required; ends with a zeroed entry; [0] is the default */
  void *user;                            /* returned by lws_context_user() */
  const char *name;                      /* for log lines, e.g. "exchange" */
  /* Server: listen on host:port. port 0 lets the kernel pick one (see
   * cs_lws_port); listen = 0 makes a client-only context. */
  int listen;
  const char *host; /* numeric address or interface; NULL: every interface */
  int port;
  const char *cert_file, *key_file; /* both: TLS (wss://); PEM files */
  /* Client: TLS for outgoing connections. ca_file NULL: the system store. */
  int client_tls;
  const char *ca_file;
  /* WebSocket extensions offered/accepted (e.g. permessage-deflate), a
   * zeroed-entry-terminated array the caller keeps; NULL: none. */
  const struct lws_extension *extensions;
} cs_lws_opts;

typedef struct cs_lws cs_lws;

/* Creates the context on `loop` (which the caller keeps and runs). Returns
 * NULL with err set when lws cannot start (port in use, unreadable
 * certificate, the libuv plugin missing, ...). */
cs_lws *cs_lws_create(uv_loop_t *loop, const cs_lws_opts *opts, cs_err *err);
struct lws_context *cs_lws_context(const cs_lws *l);
/* The port the server listens on (the one the kernel chose for port 0). */
int cs_lws_port(const cs_lws *l);
/* Step 1 above; idempotent. */
void cs_lws_stop(cs_lws *l);
/* Step 3 above; NULL is a no-op. */
void cs_lws_destroy(cs_lws *l);

#endif
