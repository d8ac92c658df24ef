/* cs_broker: `cstream broker` — a standalone Kafka-protocol broker on
 * loopback for multi-process setups and tests: librdkafka's mock cluster
 * (the embedded broker of cs_kafka.h), in memory only, for development
 * and tests; production uses a real Kafka cluster.
 *
 * librdkafka 2.0.2's mock cluster listens on a random port of its own
 * choosing. The command accepts on --port instead and relays every TCP
 * connection to it (libuv). The relay reads the Kafka framing of both
 * directions and otherwise passes bytes through untouched, except that
 *  - in Metadata and FindCoordinator responses the broker's port is
 *    rewritten to --port, so clients that follow the metadata (all of
 *    them) keep talking through the relay: one port to know, and
 *  - a topic named in a Metadata request that does not exist yet is
 *    created with --partitions partitions first (topics created on first
 *    use; the mock cluster's own default would be 4).
 * Known limit of the mock cluster: each partition keeps only its newest
 * ~5 MiB (or 100,000 message sets); older data is trimmed silently, and a
 * consumer further behind finds its offset out of range (cs.kafka reports
 * it and stops rather than skip trades).
 *
 * With --control, fault-injection commands are read from standard input,
 * one per line, each answered with one line on stdout ("ok ..." or
 * "error: ..."):
 *   down | up                 take the broker down (connections closed,
 *                             new ones refused) or bring it back
 *   errors API COUNT ERROR    the next COUNT requests of API (a name such
 *                             as Produce, Fetch, OffsetCommit, or a number)
 *                             fail with ERROR (a librdkafka error name
 *                             such as NOT_LEADER_FOR_PARTITION, or a code)
 *   pending API               how many of those injected errors are left
 *   rtt MS                    answer every request MS milliseconds late
 *   create TOPIC PARTITIONS   create a topic
 * Prints "listening port=N" on stdout once ready (--port 0: a free port).
 * SIGINT/SIGTERM: close everything, exit 0. Uses cs_kafka, libuv. */
#ifndef CS_BROKER_H
#define CS_BROKER_H

int cs_broker_command(int argc, char **argv);

#endif
