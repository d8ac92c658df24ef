-- Lua hooks: a per-trade filter and map, and user-defined aggregates.
-- The built-in aggregates stay in C; hooks cost only the pipelines that
-- declare them.
--
--   cstream run scripts/hooks.lua [input=data/sample.jsonl] [min_size=0.001]
local cs = require "cstream"

local min_size = tonumber(cs.arg("min_size", "0"))

-- Largest single trade in the window.
local max_size = cs.aggregate {
  name   = "max_size",
  init   = function() return 0 end,
  add    = function(m, t) if t.size > m then return t.size end end,
  result = function(m) return m end,
}

-- Number of taker buys and sells.
local counts = cs.aggregate {
  name   = "taker_counts",
  init   = function() return { buy = 0, sell = 0 } end,
  add    = function(c, t) c[t.taker_side] = c[t.taker_side] + 1 end, -- updates in place
  result = function(c) return c end,                                   -- any JSON value
}

cs.pipeline {
  name   = "big-trades",
  source = cs.replay { path = cs.arg("input", "data/sample.jsonl") },
  -- Keep only BTC trades of at least min_size.
  filter = function(t) return t.product_id == "BTC-USD" and t.size >= min_size end,
  -- Rename the product for the output (map may change product_id, price,
  -- size, taker_side, time and trade_id; return nil to drop the trade).
  map    = function(t) t.product_id = "BTC-USD/big"; return t end,
  window = cs.tumbling { size = "1m", lateness = "5s", aggregates = { "trades", "vwap", "volume", max_size, counts } },
  sink   = cs.jsonl { path = cs.arg("out", "-") },
}
