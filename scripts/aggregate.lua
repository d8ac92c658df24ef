-- Aggregate: Kafka -> 30-second candles -> ClickHouse, the second of the
-- seed's two stages. Reads the trade records (or raw Coinbase frames) of a
-- topic in a consumer group — run several to share the partitions — and
-- writes each window once it is complete. At least once: offsets are
-- committed only for trades whose windows every sink has acknowledged, so
-- after a crash the restarted process re-emits only what was not yet
-- durable, and ClickHouse (ReplacingMergeTree, read with FINAL) ends up
-- exactly right (docs/kafka.md, docs/deploy.md).
--
--   KAFKA_BROKERS=kafka1:9092 CLICKHOUSE_URL=http://ch:8123 cstream run scripts/aggregate.lua
--   cstream run scripts/aggregate.lua out=candles.jsonl    # JSON lines instead of ClickHouse ("-": stdout)
--   cstream run scripts/aggregate.lua start=earliest       # ignore the group's offsets, from the start
--
-- Settings (argument, else environment variable, else default):
--   brokers   KAFKA_BROKERS        127.0.0.1:9092
--   topic     KAFKA_TOPIC          trades
--   group     KAFKA_GROUP          cstream-30s
--   url       CLICKHOUSE_URL       http://127.0.0.1:8123
--   database  CLICKHOUSE_DATABASE  cstream
--   table     CLICKHOUSE_TABLE     candles_30s    (or a Distributed table you made: docs/clickhouse.md)
--   create    CLICKHOUSE_CREATE    true           (false: database, table and view must exist)
--   user      CLICKHOUSE_USER      default
--   password  CLICKHOUSE_PASSWORD  (environment only: never an argument)
local cs = require "cstream"

local function setting(name, env, default)
  return cs.arg(name, os.getenv(env) or default)
end

local sink
if cs.arg("out") then
  sink = cs.jsonl { path = cs.arg("out") }
else
  local ch = {
    url      = setting("url", "CLICKHOUSE_URL", "http://127.0.0.1:8123"),
    database = setting("database", "CLICKHOUSE_DATABASE", "cstream"),
    table    = setting("table", "CLICKHOUSE_TABLE", "candles_30s"),
    create   = setting("create", "CLICKHOUSE_CREATE", "true"),
    user     = setting("user", "CLICKHOUSE_USER", "default"),
  }
  if ch.create ~= "true" and ch.create ~= "false" then
    error("create (CLICKHOUSE_CREATE) must be true or false, not '" .. tostring(ch.create) .. "'", 0)
  end
  ch.create = ch.create == "true"
  if os.getenv("CLICKHOUSE_PASSWORD") then ch.password_env = "CLICKHOUSE_PASSWORD" end
  sink = cs.clickhouse(ch)
end

cs.pipeline {
  name   = "aggregate-30s",
  source = cs.kafka {
    brokers   = setting("brokers", "KAFKA_BROKERS", "127.0.0.1:9092"),
    topic     = setting("topic", "KAFKA_TOPIC", "trades"),
    group     = setting("group", "KAFKA_GROUP", "cstream-30s"),
    start     = cs.arg("start", "committed"),
    exit_idle = cs.arg("exit_idle", "0"), -- e.g. "5s": end once the topic has been read (batch runs)
  },
  window = cs.tumbling { size = "30s", lateness = setting("lateness", "LATENESS", "5s"), by = "product_id" },
  sink   = sink,
}
