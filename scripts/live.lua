-- Live Coinbase trades -> 30-second candles on stdout.
--
--   cstream run scripts/live.lua                                  # BTC-USD, Exchange feed
--   cstream run scripts/live.lua products=BTC-USD,ETH-USD api=advanced
--   cstream run scripts/live.lua url=ws://127.0.0.1:8765          # a replay exchange (cstream serve-replay)
--   cstream run scripts/live.lua record=captures/btc-%Y%m%d.jsonl.gz
--
-- Offline (no route to Coinbase) it keeps retrying, logging each attempt's
-- reason with a growing backoff (at most 30 s), until SIGINT.
local cs = require "cstream"

local products = {}
for p in cs.arg("products", "BTC-USD"):gmatch("[^,]+") do products[#products + 1] = p end

cs.pipeline {
  name   = "live-30s",
  source = cs.coinbase {
    products = products,
    api      = cs.arg("api", "exchange"),
    url      = cs.arg("url"),        -- nil: the feed's public URL
    ca_file  = cs.arg("ca_file"),
    record   = cs.arg("record"),
  },
  window = cs.tumbling { size = "30s", lateness = cs.arg("lateness", "5s"), by = "product_id" },
  sink   = cs.jsonl { path = cs.arg("out", "-") },
}
