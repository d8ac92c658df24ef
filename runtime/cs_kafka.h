/* cs_kafka: librdkafka clients on cstream's libuv loop, and the embedded
 * broker.
 *
 * A client (producer or consumer) runs its own threads inside librdkafka;
 * everything it has to say to cstream — delivery reports, messages,
 * rebalances, commits, errors and its log lines — waits in one librdkafka
 * queue (the consumer queue, or the main queue of a producer; the log is
 * routed there with rd_kafka_set_log_queue). cs_kafka hooks that queue to
 * the loop: librdkafka writes a byte to a pipe when the queue goes from
 * empty to non-empty (rd_kafka_queue_io_event_enable), a uv_poll watches
 * the pipe and calls the owner's on_wake, which serves the queue on the
 * loop thread. Because the byte comes only on that transition, on_wake
 * must serve the queue until it is empty, or — to keep the loop
 * responsive — serve a budget and call cs_kafka_rewake, which calls
 * on_wake again from the next loop turn. Every librdkafka callback (log,
 * error, delivery report, rebalance, commit) therefore runs on the loop
 * thread, inside on_wake.
 *
 * The embedded broker (brokers = "embedded") is librdkafka's mock cluster
 * (rdkafka_mock.h): a Kafka-protocol broker on a random loopback port,
 * in this process, in memory only, created once per process on first use
 * and destroyed at exit. In librdkafka 2.0.2 a mock partition keeps only
 * its newest ~5 MiB (or 100,000 message sets) and trims older data
 * silently; consumers detect the loss as an out-of-range offset (the
 * Kafka source reports it). Development and tests only.
 *
 * Uses librdkafka, libuv, cs_log. Loop thread only (the mock cluster runs
 * its own thread). */
#ifndef CS_KAFKA_H
#define CS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <uv.h>

#include "cs_err.h"

/* The `brokers` value that means the embedded broker. */
#define CS_KAFKA_EMBEDDED "embedded"

typedef struct cs_kafka cs_kafka;

typedef struct cs_kafka_cbs {
  void *ud;
  /* The client's queue holds events: serve them (rd_kafka_poll for a
   * producer, rd_kafka_consume_batch_queue for a consumer) until the queue
   * is empty, or call cs_kafka_rewake. Loop thread. */
  void (*on_wake)(void *ud);
  /* librdkafka reported an error (already logged). fatal: the client
   * cannot go on (rd_kafka_fatal_error); `reason` says why. Optional. */
  void (*on_error)(void *ud, int fatal, rd_kafka_resp_err_t code, const char *reason);
} cs_kafka_cbs;

/* A configuration with cstream's common settings: bootstrap.servers
 * (`brokers`, or the embedded broker's address for "embedded"), client.id,
 * logs through the event queue at the level cs_log is at. The caller owns
 * the result (cs_kafka_create takes it). NULL on error. */
rd_kafka_conf_t *cs_kafka_conf(const char *brokers, cs_err *err);
/* Sets one property; on failure err names it. 0 or -1. */
int cs_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value, cs_err *err);
/* Sets each "key=value" of `props` (a plugin's `config` option: called
 * last, so they may change any setting before them). On failure err says
 * `what` (e.g. "option 'config'") and the entry. 0 or -1. */
int cs_kafka_set_props(rd_kafka_conf_t *conf, char *const *props, size_t n, const char *what, cs_err *err);

/* Creates the client and hooks its queue to the loop. Takes ownership of
 * conf (also on failure). A consumer needs group.id in conf; its main
 * queue is redirected to the consumer queue (rd_kafka_poll_set_consumer).
 * The conf's opaque is set to the cs_kafka: librdkafka callbacks the owner
 * set on conf (dr_msg_cb, rebalance_cb, offset_commit_cb) find their state
 * with cs_kafka_ud(opaque). `label` names the client in logs. */
cs_kafka *cs_kafka_create(uv_loop_t *loop, rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *label,
                          const cs_kafka_cbs *cbs, cs_err *err);
rd_kafka_t *cs_kafka_rk(const cs_kafka *k);
/* The consumer queue (consumer) or main queue (producer) being watched. */
rd_kafka_queue_t *cs_kafka_queue(const cs_kafka *k);
void *cs_kafka_ud(const cs_kafka *k);
const char *cs_kafka_label(const cs_kafka *k);
/* Calls on_wake again on the next loop turn (the queue was not emptied). */
void cs_kafka_rewake(cs_kafka *k);
/* Stops watching the queue and closes the libuv handles; the client stays
 * usable (blocking calls, final commits) until cs_kafka_destroy, which is
 * called after the loop has closed the handles. destroy(NULL) is a no-op.
 * A consumer is closed (rd_kafka_consumer_close: leaves its group, serves
 * the last rebalance) by destroy, unless the owner did it already. */
void cs_kafka_close(cs_kafka *k);
void cs_kafka_destroy(cs_kafka *k);

/* The embedded broker: created on first call, one per process, destroyed
 * at exit. Returns its bootstrap list ("127.0.0.1:PORT"), or NULL. */
const char *cs_kafka_embedded(cs_err *err);
/* Creates `topic` with `partitions` partitions on the embedded broker
 * unless it exists (created earlier, or by a client on first use with the
 * broker's default of 4 partitions). 0 or -1. */
int cs_kafka_embedded_topic(const char *topic, int partitions, cs_err *err);
/* The embedded broker's mock cluster (NULL before cs_kafka_embedded), for
 * fault injection by `cstream broker`. */
struct rd_kafka_mock_cluster_s *cs_kafka_embedded_cluster(void);

/* RFC 3339 with microseconds ("2025-08-22T20:11:30.012637Z"): `buf` must
 * hold 28 bytes. Returns the length. */
size_t cs_kafka_time_us(int64_t us, char *buf);

#endif
