/* cs_kafka_stats: the few figures cstream reads from librdkafka's
 * statistics (the JSON document librdkafka emits every
 * statistics.interval.ms, STATISTICS.md in librdkafka): request retries
 * and transmission errors summed over the brokers, and the messages
 * waiting in the client's queues. Uses cs_json. */
#ifndef CS_KAFKA_STATS_H
#define CS_KAFKA_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_kafka_stats {
  uint64_t txretries; /* requests retried, all brokers ("txretries") */
  uint64_t txerrs;    /* transmission errors, all brokers ("txerrs") */
  uint64_t msg_cnt;   /* messages in the producer's queues ("msg_cnt") */
} cs_kafka_stats;

/* Parses one statistics document. 0, or -1 when it is not one (out is
 * then unchanged). */
int cs_kafka_stats_parse(const char *json, size_t len, cs_kafka_stats *out);

#endif
