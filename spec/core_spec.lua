-- cstream.core: the C primitives (durations, times, decimals, the feed
-- parser) and the window engine, checked against hand-computed values and
-- against the pure-Lua reference engine in spec/helpers.lua.
local helpers = require "spec.helpers"
local core = require "cstream.core"

local S = 1000000 -- µs per second
local T0 = 1755893490 * S -- 2025-08-22T20:11:30Z (`date -u -d ... +%s`), a multiple of 30 s

local BTC_LINE = '{"type":"match","trade_id":865127782,"maker_order_id":"5f4bb11b-f065-4025-ad53-2091b10ad2cf",' ..
  '"taker_order_id":"66715b57-0167-4ae9-8b2b-75a064a923f4","side":"buy","size":"0.00004147",' ..
  '"price":"116827.85","product_id":"BTC-USD","sequence":110614077300,"time":"2025-08-22T20:11:30.012637Z"}'
local ETH_LINE = '{"type":"match","trade_id":689038653,"maker_order_id":"6c1c7aca-3bc5-4b75-8956-aa6fa22463f2",' ..
  '"taker_order_id":"83dc8f40-f09d-4e8e-beba-81c64e403d75","side":"sell","size":"1","price":"4825.3",' ..
  '"product_id":"ETH-USD","sequence":85742786325,"time":"2025-08-22T20:11:30.684898Z"}'

describe("cstream.core", function()
  describe("parse_duration", function()
    it("parses the duration forms into microseconds", function()
      assert.equal(500000, core.parse_duration("500ms"))
      assert.equal(30 * S, core.parse_duration("30s"))
      assert.equal(60 * S, core.parse_duration("1m"))
      assert.equal(3600 * S, core.parse_duration("1h"))
      assert.equal(1500000, core.parse_duration("1.5s"))
      assert.equal(250, core.parse_duration("250us"))
      assert.equal(30 * S, core.parse_duration("30"))
      assert.equal(0, core.parse_duration("0"))
      assert.equal(30 * S, core.parse_duration(30)) -- a number is taken as its text
    end)
    it("rejects everything else with nil", function()
      for _, bad in ipairs { "", "-1s", "1d", "abc", "1e3", "s", " 1s", "1s ", "1S", "inf", "nan", "0x10", "1.2.3s" } do
        assert.is_nil(core.parse_duration(bad), bad)
      end
    end)
  end)

  describe("parse_time / format_time", function()
    it("parses RFC 3339 UTC times exactly", function()
      assert.equal(1755893490012637, core.parse_time("2025-08-22T20:11:30.012637Z"))
      assert.equal(1755893490123456, core.parse_time("2025-08-22T20:11:30.1234569Z")) -- truncated
      assert.equal(1755893490100000, core.parse_time("2025-08-22T20:11:30.1Z"))
      assert.equal(T0, core.parse_time("2025-08-22T20:11:30Z"))
      assert.equal(0, core.parse_time("1970-01-01T00:00:00Z"))
      assert.equal(-500000, core.parse_time("1969-12-31T23:59:59.5Z"))
      assert.equal(951782400 * S, core.parse_time("2000-02-29T00:00:00Z"))
      -- against os.time's calendar (UTC via the ! format round trip)
      for _, s in ipairs { "2024-02-29T12:34:56Z", "2023-12-31T23:59:59Z", "2030-01-01T00:00:00Z" } do
        local us = core.parse_time(s)
        assert.equal(s, os.date("!%Y-%m-%dT%H:%M:%SZ", us / S))
      end
    end)
    it("rejects bad times with nil and a reason", function()
      for _, bad in ipairs { "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2025-13-01T00:00:00Z",
        "2025-08-22T24:00:00Z", "2025-08-22T23:59:60Z", "2025-08-22T20:11:30", "2025-08-22T20:11:30z",
        "2025-08-22T20:11:30+00:00", "2025-08-22 20:11:30Z", "2025-08-22T20:11:30.1234567890Z",
        "2025-08-22T20:11:30.Z", "", "yesterday" } do
        local v, why = core.parse_time(bad)
        assert.is_nil(v, bad)
        assert.is_string(why)
      end
    end)
    it("formats at second precision, flooring", function()
      assert.equal("2025-08-22T20:11:30Z", core.format_time(1755893490012637))
      assert.equal("2025-08-22T20:11:30Z", core.format_time(T0))
      assert.equal("1970-01-01T00:00:00Z", core.format_time(0))
      assert.equal("1969-12-31T23:59:59Z", core.format_time(-1))
      assert.equal("1969-12-31T23:59:58Z", core.format_time(-1000001))
      for _ = 1, 200 do
        local secs = math.random(0, 4000000000)
        assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", secs), core.format_time(secs * S + math.random(0, 999999)))
      end
    end)
  end)

  describe("parse_decimal", function()
    it("converts plain decimals like tonumber", function()
      for _, s in ipairs { "116827.85", "0.00004147", "1", "0", "0.0", "4825.3", "007.50", "123456789012345678901234.5",
        "0.1000000000000000055511151231257827", "9007199254740993" } do
        assert.equal(tonumber(s), core.parse_decimal(s), s)
      end
    end)
    it("rejects anything else", function()
      for _, bad in ipairs { "", ".", "1.", ".5", "1e5", "-1", "+1", " 1", "1 ", "1,5", "0x10", "inf", "nan" } do
        assert.is_nil(core.parse_decimal(bad), bad)
      end
    end)
  end)

  describe("parse_line", function()
    it("returns a trade with the taker's side", function()
      local kind, t = core.parse_line(BTC_LINE)
      assert.equal("trade", kind)
      assert.same({
        product_id = "BTC-USD", trade_id = 865127782, price = 116827.85, size = 0.00004147,
        price_str = "116827.85", size_str = "0.00004147", sequence = 110614077300, last_match = false,
        time = 1755893490012637, taker_side = "sell", -- the maker bought
      }, t)
      kind, t = core.parse_line(ETH_LINE)
      assert.equal("trade", kind)
      assert.equal("buy", t.taker_side) -- the maker sold
      assert.equal(1, t.size)
      assert.equal(4825.3, t.price)
    end)
    it("classifies other messages by type", function()
      assert.same({ "other", "heartbeat" },
        { core.parse_line('{"type":"heartbeat","last_trade_id":1,"product_id":"BTC-USD","sequence":2}') })
      assert.same({ "other", "ticker" }, { core.parse_line('{"type":"ticker","price":"1"}') })
      assert.same({ "other", "subscriptions" }, { core.parse_line('{"type":"subscriptions","channels":[]}') })
      assert.same({ "other", "" }, { core.parse_line("{}") })
    end)
    it("explains invalid lines", function()
      local function why(line)
        local kind, reason = core.parse_line(line)
        assert.equal("invalid", kind, line)
        assert.is_string(reason)
        return reason
      end
      assert.is_true(helpers.contains(why(BTC_LINE:gsub('"price":"116827.85"', '"price":"-1"')), "price"))
      assert.is_true(helpers.contains(why(BTC_LINE:gsub('"side":"buy"', '"side":"BUY"')), "side"))
      assert.is_true(helpers.contains(why(BTC_LINE:gsub('"trade_id":865127782', '"trade_id":"865127782"')), "trade_id"))
      assert.is_true(helpers.contains(why(BTC_LINE:gsub('"trade_id":865127782', '"trade_id":1.5')), "trade_id"))
      assert.is_true(helpers.contains(why(BTC_LINE:gsub('Z"}$', '"}')), "time"))
      assert.is_true(helpers.contains(why(BTC_LINE:sub(1, -2) .. ',"price":"1"}'), "price"))
      why(BTC_LINE:sub(1, 50))
      why("[1,2]")
      why("")
    end)
  end)

  describe("window", function()
    local function trade(product, id, time, price, size, side)
      return { product_id = product, trade_id = id, time = time, price = price, size = size or 1,
        taker_side = side or "buy" }
    end

    it("emits a window when the watermark reaches its end", function()
      local w = core.window { size = "30s" }
      assert.is_nil(w:watermark())
      assert.equal("accepted", w:add(trade("BTC-USD", 1, T0 + 1 * S, 100, 1, "buy")))
      assert.equal("accepted", w:add(trade("BTC-USD", 2, T0 + 2 * S, 102, 3, "sell")))
      assert.equal("duplicate", w:add(trade("BTC-USD", 2, T0 + 3 * S, 999, 1)))
      assert.equal("accepted", w:add(trade("ETH-USD", 2, T0 + 29 * S, 10, 2, "sell")))
      assert.same({}, w:rows())
      assert.equal(2, w:open_count()) -- BTC and ETH
      assert.equal("accepted", w:add(trade("BTC-USD", 3, T0 + 30 * S, 101, 1)))
      assert.equal(T0 + 30 * S, w:watermark())
      local rows = w:rows()
      assert.equal(2, #rows)
      assert.same({
        product_id = "BTC-USD", window_start = "2025-08-22T20:11:30Z", window_end = "2025-08-22T20:12:00Z",
        trades = 2, avg_price = 101, vwap = (100 + 306) / 4, open = 100, high = 102, low = 100, close = 102,
        volume = 4, buy_volume = 1, sell_volume = 3, revision = 0,
      }, rows[1])
      assert.equal("ETH-USD", rows[2].product_id)
      assert.equal(2, rows[2].sell_volume)
      assert.same({}, w:rows()) -- rows() hands each row over once
      assert.equal("late", w:add(trade("LTC-USD", 1, T0 + 5 * S, 1)))
      w:advance(T0)
      assert.equal(T0 + 30 * S, w:watermark()) -- never back
      w:finish()
      rows = w:rows()
      assert.equal(1, #rows)
      assert.equal("2025-08-22T20:12:00Z", rows[1].window_start)
      assert.equal(0, w:open_count())
    end)

    it("puts every trade in one window with by = none", function()
      local w = core.window { size = "1m", by = "none" }
      w:add(trade("BTC-USD", 1, T0, 100))
      w:add(trade("ETH-USD", 1, T0 + S, 10))
      w:finish()
      local rows = w:rows()
      assert.equal(1, #rows)
      assert.equal("*", rows[1].product_id)
      assert.equal(2, rows[1].trades)
    end)

    it("rejects a bad configuration", function()
      assert.is_truthy(helpers.error_of(function() core.window { size = "1.5s" } end))
      assert.is_truthy(helpers.error_of(function() core.window { size = "soon" } end))
      assert.is_truthy(helpers.error_of(function() core.window { size = "30s", lateness = "-1s" } end))
    end)

    it("re-emits a window for a late trade with update_for", function()
      local w = core.window { size = "30s", update_for = "1m" }
      assert.equal("accepted", w:add(trade("A", 1, T0 + S, 10)))
      assert.equal("accepted", w:add(trade("A", 2, T0 + 30 * S, 20)))
      assert.equal(1, #w:rows())
      assert.equal("updated", w:add(trade("A", 3, T0 + 2 * S, 30)))
      local rows = w:rows()
      assert.equal(1, #rows)
      assert.equal(1, rows[1].revision)
      assert.equal(2, rows[1].trades)
      assert.equal("duplicate", w:add(trade("A", 3, T0 + 3 * S, 30)))
      w:advance(T0 + 90 * S)
      assert.equal(1, #w:rows()) -- [30 s, 60 s)
      assert.equal("late", w:add(trade("A", 4, T0 + 2 * S, 30)))
    end)

    -- The C engine against the reference model on random streams.
    local configs = {
      { size = "30s", lateness = "0", by = "product_id" },
      { size = "30s", lateness = "5s", by = "product_id" },
      { size = "1s", lateness = "0", by = "product_id" },
      { size = "1m", lateness = "10s", by = "none" },
      { size = "5s", lateness = "2s", by = "product_id", update_for = "20s" },
      { size = "10s", lateness = "0", by = "none", update_for = "5s" },
    }
    for ci, conf in ipairs(configs) do
      it(("matches the reference model on a random stream (%s, lateness %s, by %s%s)"):format(conf.size,
        conf.lateness, conf.by, conf.update_for and (", update_for " .. conf.update_for) or ""), function()
        math.randomseed(1000 + ci)
        local trades = helpers.random_trades(4000, {
          step = math.random(50000, 400000), jitter = math.random(0, 40) * S, dup_pct = 6,
        })
        local w = core.window(conf)
        local ref = helpers.ref_window {
          size = core.parse_duration(conf.size), lateness = core.parse_duration(conf.lateness), by = conf.by,
          update_for = conf.update_for and core.parse_duration(conf.update_for) or 0,
        }
        local counts = {}
        for i, t in ipairs(trades) do
          local want = ref:add(t)
          local got = w:add(t)
          counts[want] = (counts[want] or 0) + 1
          assert.equal(want, got, ("trade %d (%s #%d at %.0f)"):format(i, t.product_id, t.trade_id, t.time))
          local d = helpers.diff_rows(w:rows(), ref:take_rows())
          assert.is_nil(d, ("after trade %d: %s"):format(i, tostring(d)))
          assert.equal(ref:watermark(), w:watermark())
          if i % 97 == 0 then assert.equal(ref:open_count(), w:open_count()) end
          if i == 2000 then
            -- a wall-clock style advance in the middle
            local to = t.time + math.random(0, 20) * S
            ref:advance(to)
            w:advance(to)
            d = helpers.diff_rows(w:rows(), ref:take_rows())
            assert.is_nil(d, "after advance: " .. tostring(d))
          end
        end
        -- the stream exercised every verdict it can
        assert.is_true((counts.accepted or 0) > 1000)
        assert.is_true((counts.duplicate or 0) > 0)
        assert.is_true((counts.late or 0) + (counts.updated or 0) > 0)
        if conf.update_for then assert.is_true((counts.updated or 0) > 0) end
        ref:finish()
        w:finish()
        local d = helpers.diff_rows(w:rows(), ref:take_rows())
        assert.is_nil(d, "after finish: " .. tostring(d))
        assert.equal(0, w:open_count())
      end)
    end

    it("agrees with the reference on the real capture's first trades", function()
      local f = io.open("data/coinbase-exchange-matches-2025-08-22.jsonl")
      if not f then
        pending("capture not available")
        return
      end
      local w = core.window { size = "5s", lateness = "1s" }
      local ref = helpers.ref_window { size = 5 * S, lateness = S }
      local n = 0
      for l in f:lines() do
        local kind, t = core.parse_line(l)
        assert.equal("trade", kind)
        assert.equal(ref:add(t), w:add(t))
        n = n + 1
      end
      f:close()
      ref:finish()
      w:finish()
      assert.equal(447, n)
      local rows = w:rows()
      assert.is_nil(helpers.diff_rows(rows, ref:take_rows()))
      local total = 0
      for _, r in ipairs(rows) do total = total + r.trades end
      assert.is_true(total > 400)
    end)
  end)
end)
