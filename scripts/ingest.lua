-- Ingest: Coinbase trades -> Kafka, the first of the seed's two stages.
-- Each trade becomes one message (a v1 trade record, keyed by product_id,
-- timestamped with the produce time); the feed's clock goes to every
-- partition once a second so the aggregating side closes windows in quiet
-- markets (docs/kafka.md).
--
--   KAFKA_BROKERS=kafka1:9092,kafka2:9092 cstream run scripts/ingest.lua
--   cstream broker --port 9092 &                         # a broker for development
--   KAFKA_BROKERS=127.0.0.1:9092 cstream run scripts/ingest.lua products=BTC-USD,ETH-USD
--   cstream run scripts/ingest.lua url=ws://127.0.0.1:8765  # a replay exchange (cstream serve-replay)
--   cstream run scripts/ingest.lua replay=data/sample.jsonl # a capture instead of the live feed
--
-- Settings (argument, else environment variable, else default):
--   brokers     KAFKA_BROKERS     127.0.0.1:9092
--   topic       KAFKA_TOPIC       trades
--   partitions  KAFKA_PARTITIONS  4   (only when cstream's own broker creates the topic)
--   products    PRODUCTS          BTC-USD  (comma-separated)
--   api         COINBASE_API      exchange (or advanced)
--   url         COINBASE_URL      the feed's public URL
local cs = require "cstream"

local function setting(name, env, default)
  return cs.arg(name, os.getenv(env) or default)
end

local products = {}
for p in setting("products", "PRODUCTS", "BTC-USD"):gmatch("[^,%s]+") do products[#products + 1] = p end

local source
if cs.arg("replay") then
  source = cs.replay { path = cs.arg("replay"), rate = cs.arg("rate", 1) }
else
  source = cs.coinbase {
    products      = products,
    api           = setting("api", "COINBASE_API", "exchange"),
    url           = setting("url", "COINBASE_URL", nil), -- nil: the feed's public URL
    ca_file       = cs.arg("ca_file"),
    record        = cs.arg("record"),
  }
end

cs.pipeline {
  name   = "ingest",
  source = source,
  sink   = cs.kafka {
    brokers    = setting("brokers", "KAFKA_BROKERS", "127.0.0.1:9092"),
    topic      = setting("topic", "KAFKA_TOPIC", "trades"),
    partitions = tonumber(setting("partitions", "KAFKA_PARTITIONS", 4)),
  },
}
