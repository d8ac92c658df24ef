-- Both stages in one process: Coinbase -> Kafka -> 30-second candles,
-- through the embedded broker by default (an in-memory Kafka-protocol
-- broker inside cstream: no Kafka to install; development and tests —
-- its data is lost at exit and each partition keeps only its newest
-- ~5 MiB). Set KAFKA_BROKERS to use a real cluster instead.
--
--   cstream run scripts/pipeline.lua
--   cstream run scripts/pipeline.lua products=BTC-USD,ETH-USD
--   cstream run scripts/pipeline.lua replay=data/sample.jsonl rate=0 exit_idle=3s
--   KAFKA_BROKERS=127.0.0.1:9092 cstream run scripts/pipeline.lua
local cs = require "cstream"

local brokers = cs.arg("brokers", os.getenv("KAFKA_BROKERS") or "embedded")
local topic = cs.arg("topic", "trades")

local products = {}
for p in cs.arg("products", "BTC-USD"):gmatch("[^,]+") do products[#products + 1] = p end

local source
if cs.arg("replay") then
  source = cs.replay { path = cs.arg("replay"), rate = cs.arg("rate", 1) }
else
  source = cs.coinbase { products = products, api = cs.arg("api", "exchange"), url = cs.arg("url") }
end

cs.pipeline {
  name   = "ingest",
  source = source,
  sink   = cs.kafka { brokers = brokers, topic = topic },
}

cs.pipeline {
  name   = "aggregate-30s",
  source = cs.kafka {
    brokers   = brokers,
    topic     = topic,
    group     = cs.arg("group", "cstream-30s"),
    exit_idle = cs.arg("exit_idle", "0"),
  },
  window = cs.tumbling { size = "30s", lateness = cs.arg("lateness", "5s"), by = "product_id" },
  sink   = cs.jsonl { path = cs.arg("out", "-") },
}
