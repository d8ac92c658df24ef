-- Tests of scripts/replay.lua, with cstream.test:
--
--   cstream test scripts/replay_test.lua
--
-- Each case loads the script as `cstream run` would (nothing runs), takes its
-- window and sinks, feeds trades (or a capture) and checks the rows and the
-- counters. Nothing is read from or written to disk except the capture of
-- the last case; no clock but the one the test moves. docs/operations.md
-- describes the API.
local T = require "cstream.test"

local SCRIPT = "scripts/replay.lua" -- 30 s windows, 5 s lateness, by product

T.case("trades of one window make one row: OHLC, VWAP, taker volumes", function()
  local p = T.pipeline(SCRIPT)
  p:trade { price = "100", size = "1", taker_side = "buy", time = "2025-01-01T00:00:01Z" }
  p:trade { price = "110", size = "3", taker_side = "sell", time = "2025-01-01T00:00:20Z" }
  p:trade { price = "90", size = "1", taker_side = "buy", time = "2025-01-01T00:00:29.999999Z" }
  T.eq(#p.rows, 0, "the window is still open")
  p:finish()
  T.eq(#p.rows, 1)
  local r = p.rows[1]
  T.eq(r.product_id, "BTC-USD")
  T.eq(r.window_start, "2025-01-01T00:00:00Z")
  T.eq(r.window_end, "2025-01-01T00:00:30Z")
  T.eq({ r.trades, r.open, r.high, r.low, r.close }, { 3, 100, 110, 90, 90 })
  T.near(r.vwap, (100 * 1 + 110 * 3 + 90 * 1) / 5)
  T.near(r.avg_price, 100)
  T.eq({ r.volume, r.buy_volume, r.sell_volume }, { 5, 2, 3 })
end)

T.case("a window is emitted once the newest trade minus lateness reaches its end", function()
  local p = T.pipeline(SCRIPT)
  p:trade { time = "2025-01-01T00:00:10Z" }
  p:trade { time = "2025-01-01T00:00:34.9Z" } -- watermark 00:00:29.9
  T.eq(#p.rows, 0)
  p:trade { time = "2025-01-01T00:00:35Z" }   -- watermark 00:00:30: [00:00, 00:30) is complete
  T.eq(#p.rows, 1)
  T.eq(p.rows[1].trades, 1)
  T.eq(p.stats.open_windows, 1)
end)

T.case("late and duplicate trades are dropped and counted", function()
  local p = T.pipeline(SCRIPT)
  p:trade { trade_id = 1, time = "2025-01-01T00:00:10Z" }
  p:trade { trade_id = 2, time = "2025-01-01T00:00:40Z" } -- closes [00:00, 00:30)
  p:trade { trade_id = 3, time = "2025-01-01T00:00:20Z" } -- its window has closed: late
  p:trade { trade_id = 2, time = "2025-01-01T00:00:41Z" } -- seen already: duplicate
  p:finish()
  T.eq(p.stats.late, 1)
  T.eq(p.stats.duplicates, 1)
  T.eq(p.stats.trades, 2)
  T.eq(#p.rows, 2)
end)

T.case("products have their own windows", function()
  local p = T.pipeline(SCRIPT)
  p:trade { product_id = "BTC-USD", price = 50000, time = 10 }
  p:trade { product_id = "ETH-USD", price = 3000, time = 12 }
  p:finish()
  T.eq(#p.rows, 2)
  T.eq(p:row("ETH-USD", "1970-01-01T00:00:00Z").vwap, 3000)
  T.eq(p:row("BTC-USD").vwap, 50000)
end)

T.case("the virtual clock closes windows when no trade comes, as a live feed's clock does", function()
  local p = T.pipeline(SCRIPT)
  p:trade { time = "2025-01-01T00:00:10Z" }
  p:advance("2025-01-01T00:00:35.5Z") -- watermark 35.5 - 5 - 1 (grace) = 29.5 s
  T.eq(#p.rows, 0)
  p:advance("2025-01-01T00:00:36Z")   -- watermark 30 s
  T.eq(#p.rows, 1)
end)

T.case("missing trade ids are counted as gaps when their window closes", function()
  local p = T.pipeline(SCRIPT)
  p:trade { trade_id = 100, time = "2025-01-01T00:00:01Z" }
  p:trade { trade_id = 104, time = "2025-01-01T00:00:02Z" } -- 101..103 missing
  p:trade { trade_id = 102, time = "2025-01-01T00:00:03Z" } -- arrives late but in time
  p:finish()
  T.eq(p.stats.gaps, 2)
  T.eq(p.stats.missing_trades, 2)
end)

T.case("invalid messages are counted, not fatal", function()
  local p = T.pipeline(SCRIPT)
  p:line("not json")
  p:trade { price = "-1", time = 1 }            -- prices must be positive
  p:line('{"type":"heartbeat","sequence":1,"last_trade_id":0,"product_id":"BTC-USD","time":"2025-01-01T00:00:00Z"}')
  T.eq(p.stats.invalid, 2)
  T.eq(p.stats.ignored, 1)
end)

T.case("the sample capture gives the windows of the summary line", function()
  local p = T.pipeline(SCRIPT, { input = "data/sample.jsonl" })
  p:capture("data/sample.jsonl")
  p:finish()
  T.eq(p.stats.trades, 2977)
  T.eq(p.stats.ignored, 1439)
  T.eq(#p.rows, 50)
end)
