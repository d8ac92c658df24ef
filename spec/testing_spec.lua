-- cstream.test, the harness behind `cstream test` (users' pipeline tests),
-- exercised here inside busted: scripts/hooks.lua (a Lua filter, a map and
-- user aggregates) and a pipeline without a window.
local T = require "cstream.test"
local helpers = require "spec.helpers"

describe("cstream.test", function()
  it("builds a script's pipeline with its hooks and aggregates, without its source and sinks", function()
    local p = T.pipeline("scripts/hooks.lua", { input = "/nonexistent/never-opened.jsonl" })
    assert.equal("big-trades", p.name)
    p:trade { product_id = "ETH-USD", size = "5", time = "2025-01-01T00:00:01Z" }       -- filtered out
    p:trade { product_id = "BTC-USD", size = "0.5", price = "10", taker_side = "buy", time = "2025-01-01T00:00:02Z" }
    p:trade { product_id = "BTC-USD", size = "1.5", price = "20", taker_side = "sell", time = "2025-01-01T00:00:03Z" }
    p:finish()
    assert.equal(1, p.stats.filtered)
    assert.equal(2, p.stats.trades)
    assert.equal(1, #p.rows)
    local r = p.rows[1]
    assert.equal("BTC-USD/big", r.product_id)    -- the map renamed it
    assert.equal(1.5, r.max_size)                -- user aggregates are decoded
    assert.same({ buy = 1, sell = 1 }, r.taker_counts)
    assert.is_nil(r.open)                         -- not among the selected aggregates
    assert.near(17.5, r.vwap, 1e-12)
    p:close()
  end)

  it("takes script arguments and picks a pipeline by name", function()
    local dir = os.tmpname()
    os.remove(dir)
    local path = dir .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write([[
local cs = require "cstream"
cs.pipeline { name = "a", source = cs.replay { path = "x" }, window = cs.tumbling { size = cs.arg("size", "30s") },
  sink = cs.discard {} }
cs.pipeline { name = "raw", source = cs.replay { path = "x" }, sink = cs.jsonl { path = "/nonexistent/out" } }
]])
    f:close()
    local err = helpers.error_of(T.pipeline, path)
    assert.truthy(helpers.contains(err, "declares 2 pipelines (a, raw)"), err)
    local p = T.pipeline(path, { size = "1m" }, "a")
    p:trade { time = 1 }
    p:trade { time = 59 }
    p:advance(66) -- watermark 60 s: one one-minute window
    assert.equal(1, #p.rows)
    assert.equal(2, p.rows[1].trades)
    -- Without a window, the sinks get trade records (v1).
    local raw = T.pipeline(path, nil, "raw")
    raw:trade { trade_id = 7, price = "1.50", size = 2, taker_side = "sell", time = "2025-01-01T00:00:01.25Z" }
    assert.same({ v = 1, exchange = "coinbase", product_id = "BTC-USD", trade_id = 7, price = "1.50", size = "2",
      taker_side = "sell", time = "2025-01-01T00:00:01.25Z", sequence = 1 }, raw.rows[1])
    os.remove(path)
  end)

  it("reports script errors with the script's file:line", function()
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write('local cs = require "cstream"\ncs.pipeline { source = cs.replay { pth = "x" } }\n')
    f:close()
    local err = helpers.error_of(T.pipeline, path)
    assert.truthy(helpers.contains(err, path .. ":2:"), err)
    assert.truthy(helpers.contains(err, "did you mean 'path'"), err)
    os.remove(path)
  end)

  it("leaves the running script's declarations alone", function()
    local cs = require "cstream"
    local before = #cs._pipelines
    T.load("scripts/replay.lua")
    assert.equal(before, #cs._pipelines)
  end)

  it("compares deeply and says where values differ", function()
    T.eq({ a = { 1, 2 } }, { a = { 1, 2 } })
    local err = helpers.error_of(T.eq, { a = { 1, 2 } }, { a = { 1, 3 } })
    assert.truthy(helpers.contains(err, "differs at a.2"), err)
    assert.truthy(helpers.contains(T.raises(function() T.near(1, 1.1) end), "expected about 1.1"))
  end)
end)
