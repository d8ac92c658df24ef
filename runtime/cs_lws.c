/* cs_lws: a libwebsockets context on cstream's libuv loop (see cs_lws.h for
 * the two-step teardown on a foreign loop). */
#include "cs_lws.h"

#include <stdlib.h>
#include <string.h>

#include "cs_log.h"

struct cs_lws {
  uv_loop_t *loop;
  struct lws_context *ctx;
  /* lws writes NULL here once the context is wholly freed (pcontext). */
  struct lws_context *alive;
  int port;
  int stopped;
  char name[32];
};

/* lws log lines → cs_log. lws's errors are mostly about a peer (a client
 * that went away mid-handshake), so they are warnings here. */
static void lws_emit(int level, const char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  cs_log(level & LLL_ERR ? CS_LOG_WARN : CS_LOG_DEBUG, "lws", "%.*s", (int)n, line);
}

static void set_lws_logging(void) {
  int lv = LLL_ERR;
  if (cs_log_get_level() <= CS_LOG_DEBUG) lv |= LLL_WARN | LLL_NOTICE;
  lws_set_log_level(lv, lws_emit);
}

cs_lws *cs_lws_create(uv_loop_t *loop, const cs_lws_opts *opts, cs_err *err) {
  if (!opts->protocols || !opts->protocols[0].name) {
    cs_err_set(err, "cs_lws: no protocol given");
    return NULL;
  }
  if ((opts->cert_file == NULL) != (opts->key_file == NULL)) {
    cs_err_set(err, "TLS needs both a certificate and a key file");
    return NULL;
  }
  cs_lws *l = calloc(1, sizeof *l);
  if (!l) {
    cs_err_set(err, "out of memory");
    return NULL;
  }
  l->loop = loop;
  snprintf(l->name, sizeof l->name, "%s", opts->name ? opts->name : "lws");
  set_lws_logging();

  /* The context first, with no vhost: nothing in it can fail half-way.
   * (When lws_create_context fails while creating its default vhost — a
   * port in use, a bad certificate — lws 4.1.6 frees the context but leaves
   * its uv_idle, uv_timer and uv_poll handles registered on the foreign
   * loop: the loop then touches freed memory. An explicit vhost that fails
   * leaves a sound context that tears down like any other.) */
  void *loops[1] = {loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  /* A numeric IPv4 address binds an IPv4 socket. */
  if (opts->listen && opts->host && !strchr(opts->host, ':')) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  info.foreign_loops = loops; /* read during lws_create_context only */
  info.protocols = opts->protocols;
  info.extensions = opts->extensions;
  info.user = opts->user;
  info.pcontext = &l->alive;
  info.gid = -1;
  info.uid = -1;
  info.port = CONTEXT_PORT_NO_LISTEN;
  l->ctx = lws_create_context(&info);
  if (!l->ctx) {
    cs_err_set(err, "libwebsockets could not start (is libwebsockets-evlib-uv installed?)");
    free(l);
    return NULL;
  }
  l->alive = l->ctx;

  /* Then its one vhost, named "default" (clients connect through it). */
  info.vhost_name = "default";
  if (opts->listen) {
    info.port = opts->port;
    info.iface = opts->host;
    info.ssl_cert_filepath = opts->cert_file;
    info.ssl_private_key_filepath = opts->key_file;
  }
  if (opts->client_tls && opts->ca_file) info.client_ssl_ca_filepath = opts->ca_file;
  struct lws_vhost *vh = lws_create_vhost(l->ctx, &info);
  if (!vh) {
    if (opts->listen)
      cs_err_set(err, "libwebsockets could not listen on %s:%d%s (port in use? certificate or key unreadable?)",
                 opts->host ? opts->host : "*", opts->port, opts->cert_file ? " with TLS" : "");
    else
      cs_err_set(err, "libwebsockets could not set up its client side (CA file unreadable?)");
    cs_lws_destroy(l);
    return NULL;
  }
  if (opts->listen) {
    l->port = lws_get_vhost_listen_port(vh);
    if (l->port <= 0) {
      cs_err_set(err, "libwebsockets: no listening socket on %s:%d", opts->host ? opts->host : "*", opts->port);
      cs_lws_destroy(l);
      return NULL;
    }
  }
  cs_debug(l->name, "libwebsockets %s context on the libuv loop%s", lws_get_library_version(),
           opts->listen ? ", listening" : "");
  return l;
}

struct lws_context *cs_lws_context(const cs_lws *l) { return l->ctx; }
int cs_lws_port(const cs_lws *l) { return l->port; }

void cs_lws_stop(cs_lws *l) {
  if (!l || l->stopped) return;
  l->stopped = 1;
  lws_context_destroy(l->ctx);
}

void cs_lws_destroy(cs_lws *l) {
  if (!l) return;
  if (!l->stopped) {
    /* Error path: nobody ran the loop since step 1. Closing lws's handles
     * takes two loop turns (connections and lws's event pipe, then lws's
     * idle and timer). */
    cs_lws_stop(l);
    for (int i = 0; i < 4; i++) uv_run(l->loop, UV_RUN_NOWAIT);
  }
  if (l->alive) lws_context_destroy(l->ctx);
  if (l->alive) cs_warn(l->name, "libwebsockets context not wholly freed");
  free(l);
}
