-- The whole job in one process: Coinbase -> Kafka -> 30-second candles ->
-- ClickHouse, through the embedded broker by default (an in-memory
-- Kafka-protocol broker inside cstream: no Kafka to install; for one
-- machine, development and tests — its data is lost at exit and each
-- partition keeps only its newest ~5 MiB). Set KAFKA_BROKERS to use a real
-- cluster instead. This is what `./dev.sh main` runs.
--
--   cstream run scripts/pipeline.lua                                  # BTC-USD -> http://127.0.0.1:8123
--   cstream run scripts/pipeline.lua products=BTC-USD,ETH-USD out=-   # candles on stdout instead
--   cstream run scripts/pipeline.lua url=ws://127.0.0.1:8765 exit_on_close=true exit_idle=3s
--                                    # a replay exchange (cstream serve-replay ... --linger 1): ends with it
--   cstream run scripts/pipeline.lua replay=data/sample.jsonl rate=0 exit_idle=3s out=-
--
-- Settings (argument, else environment variable, else default):
--   brokers   KAFKA_BROKERS        embedded
--   topic     KAFKA_TOPIC          trades
--   products  PRODUCTS             BTC-USD
--   url       COINBASE_URL         the feed's public URL
--   ch_url    CLICKHOUSE_URL       http://127.0.0.1:8123
--   database  CLICKHOUSE_DATABASE  cstream
--   table     CLICKHOUSE_TABLE     candles_30s  (or a Distributed table you made: docs/clickhouse.md)
--   create    CLICKHOUSE_CREATE    true         (false: database, table and view must exist)
--   user      CLICKHOUSE_USER      default
--   password  CLICKHOUSE_PASSWORD  (environment only: never an argument)
local cs = require "cstream"

local function setting(name, env, default)
  return cs.arg(name, os.getenv(env) or default)
end

local brokers = setting("brokers", "KAFKA_BROKERS", "embedded")
local topic = setting("topic", "KAFKA_TOPIC", "trades")

local products = {}
for p in setting("products", "PRODUCTS", "BTC-USD"):gmatch("[^,%s]+") do products[#products + 1] = p end

local source
if cs.arg("replay") then
  source = cs.replay { path = cs.arg("replay"), rate = cs.arg("rate", 1) }
else
  source = cs.coinbase {
    products      = products,
    api           = setting("api", "COINBASE_API", "exchange"),
    url           = setting("url", "COINBASE_URL", nil),
    ca_file       = cs.arg("ca_file"),
    exit_on_close = cs.arg("exit_on_close", false), -- "true" or "false"; cs.coinbase refuses anything else
  }
end

local sink
if cs.arg("out") then
  sink = cs.jsonl { path = cs.arg("out") }
else
  local ch = {
    url      = setting("ch_url", "CLICKHOUSE_URL", "http://127.0.0.1:8123"),
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
  name   = "ingest",
  source = source,
  sink   = cs.kafka { brokers = brokers, topic = topic, partitions = tonumber(cs.arg("partitions", 4)) },
}

cs.pipeline {
  name   = "aggregate-30s",
  source = cs.kafka {
    brokers   = brokers,
    topic     = topic,
    group     = setting("group", "KAFKA_GROUP", "cstream-30s"),
    exit_idle = cs.arg("exit_idle", "0"),
  },
  window = cs.tumbling { size = "30s", lateness = setting("lateness", "LATENESS", "5s"), by = "product_id" },
  sink   = sink,
}
