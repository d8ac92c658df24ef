-- Aggregate: Kafka -> 30-second candles, the second of the seed's two
-- stages. Reads the trade records (or raw Coinbase frames) of a topic in a
-- consumer group — run several to share the partitions — and writes each
-- window once it is complete. At least once: offsets are committed only for
-- trades whose windows every sink has acknowledged, so after a crash the
-- restarted process re-emits only what was not yet durable (docs/kafka.md).
--
--   KAFKA_BROKERS=kafka1:9092 cstream run scripts/aggregate.lua
--   KAFKA_BROKERS=127.0.0.1:9092 cstream run scripts/aggregate.lua out=candles.jsonl group=candles-30s
--   cstream run scripts/aggregate.lua start=earliest      # ignore the group's offsets, from the start
--
-- Brokers: KAFKA_BROKERS (default 127.0.0.1:9092); topic=trades; out=- (stdout).
local cs = require "cstream"

cs.pipeline {
  name   = "aggregate-30s",
  source = cs.kafka {
    brokers   = cs.arg("brokers", os.getenv("KAFKA_BROKERS") or "127.0.0.1:9092"),
    topic     = cs.arg("topic", "trades"),
    group     = cs.arg("group", "cstream-30s"),
    start     = cs.arg("start", "committed"),
    exit_idle = cs.arg("exit_idle", "0"), -- e.g. "5s": end once the topic has been read (batch runs)
  },
  window = cs.tumbling { size = "30s", lateness = cs.arg("lateness", "5s"), by = "product_id" },
  sink   = cs.jsonl { path = cs.arg("out", "-") },
}
