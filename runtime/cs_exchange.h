/* cs_exchange: the replay exchange — a WebSocket server that speaks the
 * Coinbase Exchange feed protocol and serves a recorded capture, for tests
 * and for users who point bots and dashboards at a recorded market
 * (`cstream serve-replay`, docs/exchange.md).
 *
 * A client sends {"type":"subscribe","product_ids":[...],"channels":[...]};
 * the server answers with a `subscriptions` message and then streams the
 * capture's messages whose product and channel it subscribed to, paced by
 * the messages' `time` (`speed`), with `heartbeat` messages generated once
 * per second of capture time per product. Every connection has its own
 * cursor: its own streaming reader over the capture (cs_lines), opened when
 * it first subscribes; the capture is never held in memory. Data is written
 * only when the socket is writable (lws_callback_on_writable), so a slow
 * client slows its own stream and nothing queues without bound.
 *
 * On request it misbehaves (drop the TCP connection, close, stall, send
 * garbage, binary frames, an error, a huge frame, skip trade ids, never ack)
 * so that clients' error handling can be tested; every misbehaviour is
 * logged and counted.
 *
 * Uses libwebsockets on the caller's libuv loop through cs_lws; JSON through
 * cs_json. Life cycle: create (checks the options, scans the capture for its
 * products) -> start(loop) -> ... -> stop() -> [the loop drains] ->
 * destroy(). Loop thread only. */
#ifndef CS_EXCHANGE_H
#define CS_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "cs_err.h"

/* --skip-ids PRODUCT:FROM-TO (inclusive). */
typedef struct cs_exchange_skip {
  char product[64];
  int64_t from, to;
} cs_exchange_skip;

typedef struct cs_exchange_opts {
  const char *capture; /* required: .jsonl or .jsonl.gz */
  const char *host;    /* default "127.0.0.1" */
  int port;            /* 0: the kernel picks one (cs_exchange_port) */
  const char *cert_file, *key_file; /* both: wss:// */
  double speed;                     /* 0: as fast as the client reads; 1: real time; N: N times faster */
  int loop;                         /* restart the capture when it ends */
  double linger_s;                  /* after the end: close after this long; < 0: never */
  int exit_when_done;               /* stop once a client was served to the end and none is left */
  double subscribe_timeout_s;       /* close clients that do not subscribe in time; <= 0: never */
  const char *const *products;      /* valid besides the capture's products */
  size_t n_products;
  size_t max_line;      /* longest capture line served; longer ones are skipped and counted */
  size_t fragment_size; /* 0: one WebSocket frame per message; N: split longer messages into N-byte fragments */
  const char *record_sent; /* write every text frame sent to the first client (with `live`: to every
                            * client, in the order sent) here, one per line */
  /* Live: one capture clock for the whole server, started when the first
   * client subscribes and paced by the wall clock (`speed` > 0) from then
   * on; a client joins at the current position and gets only what is due
   * after it subscribed — what was due while it was away is missed, as on
   * the real feed. Not with `loop`. */
  int live;
  /* Misbehaviour (0 = off). N counts the data messages (capture messages
   * and heartbeats) sent on a connection. The one-shot ones (drop, close,
   * stall, error, oversize) happen once per server run, on the first
   * connection that gets that far, unless drop_every (drop only) or
   * every_connection. */
  uint64_t drop_after;
  int drop_every;
  uint64_t close_after;
  int close_code; /* default 1001 */
  uint64_t stall_after;
  double stall_s;
  uint64_t garbage_every, binary_every;
  uint64_t error_after;
  uint64_t oversize_after;
  size_t oversize_bytes;
  const cs_exchange_skip *skips; /* copied by create */
  size_t n_skips;
  int no_ack;
  int every_connection;
} cs_exchange_opts;

/* Fills the defaults (host 127.0.0.1, port 0, speed 1, linger forever,
 * subscribe timeout 5 s, max_line 64 MiB, close code 1001, stall 5 s,
 * oversize 5 MiB). */
void cs_exchange_opts_init(cs_exchange_opts *o);

typedef struct cs_exchange cs_exchange;

/* Copies every option (the caller keeps `o` and its strings). Opens and
 * scans the capture (its products become valid product ids) and opens
 * record_sent. NULL with err on failure. */
cs_exchange *cs_exchange_create(const cs_exchange_opts *o, cs_err *err);
/* Listens on the loop. `on_stopping` (optional) is called once when the
 * server begins to stop (cs_exchange_stop, or exit_when_done): the caller
 * closes its own handles so that the loop can end. */
int cs_exchange_start(cs_exchange *ex, uv_loop_t *loop, void (*on_stopping)(void *ud), void *ud, cs_err *err);
int cs_exchange_port(const cs_exchange *ex);
/* Closes every client (close code 1001, 1 s grace) and then the server;
 * idempotent. The loop then drains. */
void cs_exchange_stop(cs_exchange *ex);
/* After the loop has drained; NULL is a no-op. */
void cs_exchange_destroy(cs_exchange *ex);
/* One line `exchange connections=... messages=... ...` (key=value). */
void cs_exchange_print_summary(const cs_exchange *ex, FILE *f);

/* `cstream serve-replay CAPTURE [options]`: argv[0] is the first argument
 * after the command. Prints `listening port=N` on stdout once listening,
 * runs until SIGINT/SIGTERM (or --exit-when-done), prints the summary on
 * stderr. Returns the exit status: 0 ok (also after a signal), 1 could not
 * start (capture unreadable, port in use, ...), 2 bad command line. */
int cs_exchange_command(int argc, char **argv);

#endif
