-- Replay a capture into ClickHouse: 30-second candles per product, one row
-- per window in cstream.candles_30s (created if missing), re-emissions
-- replacing earlier rows (query with FINAL or the view candles_30s_latest).
--
--   cstream run scripts/clickhouse.lua                      # data/sample.jsonl -> http://127.0.0.1:8123
--   cstream run scripts/clickhouse.lua url=http://ch:8123 input=capture.jsonl.gz rate=10
--   CLICKHOUSE_URL=https://ch:8443 CLICKHOUSE_PASSWORD=... cstream run scripts/clickhouse.lua user=writer
--
-- The password is read from the environment variable CLICKHOUSE_PASSWORD
-- (never from the script or the command line); see docs/clickhouse.md.
local cs = require "cstream"

local sink = {
  url      = cs.arg("url", os.getenv("CLICKHOUSE_URL") or "http://127.0.0.1:8123"),
  database = cs.arg("database", "cstream"),
  table    = "candles_30s",
  user     = cs.arg("user", "default"),
}
if os.getenv("CLICKHOUSE_PASSWORD") then sink.password_env = "CLICKHOUSE_PASSWORD" end

cs.pipeline {
  name   = "candles-ch",
  source = cs.replay { path = cs.arg("input", "data/sample.jsonl"), rate = cs.arg("rate", 0) },
  window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
  sink   = cs.clickhouse(sink),
}
