-- Replays a recorded Coinbase feed into 30-second candles on stdout.
--
--   cstream run scripts/replay.lua                       # data/sample.jsonl
--   cstream run scripts/replay.lua input=capture.jsonl.gz rate=10 out=candles.jsonl
local cs = require "cstream"

cs.pipeline {
  name   = "btc-30s",
  source = cs.replay { path = cs.arg("input", "data/sample.jsonl"), rate = cs.arg("rate", 0) },
  window = cs.tumbling { size = cs.arg("size", "30s"), lateness = cs.arg("lateness", "5s"), by = "product_id" },
  sink   = cs.jsonl { path = cs.arg("out", "-") },
}
