-- Shared code of the specs (require "spec.helpers"): error capture, and an
-- independent pure-Lua model of the tumbling-window engine that the C engine
-- (cstream.core.window) is checked against.
local M = {}

--- Runs fn(...) and returns its error message, or nil when it did not fail.
function M.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return nil end
  return tostring(err)
end

--- The line number of the caller (use it on the same line as the call
--- whose error position is checked).
function M.line()
  return debug.getinfo(2, "l").currentline
end

--- The short_src of the caller's chunk ("spec/api_spec.lua" or so).
function M.source()
  return debug.getinfo(2, "S").short_src
end

--- Empties require("cstream")._pipelines in place.
function M.reset_pipelines(cs)
  for k in pairs(cs._pipelines) do cs._pipelines[k] = nil end
end

--- Does `s` start with `prefix` (plain text)?
function M.starts_with(s, prefix)
  return type(s) == "string" and s:sub(1, #prefix) == prefix
end

--- Does `s` contain `needle` (plain text)?
function M.contains(s, needle)
  return type(s) == "string" and s:find(needle, 1, true) ~= nil
end

---------------------------------------------------------------------------
-- Reference window engine.
--
-- Written from the contract in runtime/cs_window.h, not from the C code:
-- windows [floor(t/size)*size, +size) per product (or "*"); the watermark is
-- the largest accepted event time minus lateness (or an advance), never
-- moving back; a trade is late when its window's end <= watermark (or, with
-- update_for, "updated" while end + update_for > watermark), then a
-- duplicate when (product, trade_id) is held by a window still remembered;
-- windows are emitted once the watermark reaches their end, by end then key.
-- All times are integer microseconds (exact in a Lua number below 2^53).
---------------------------------------------------------------------------

local function floor_div(a, b) return math.floor(a / b) end

local function fmt_time(us)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", floor_div(us, 1000000))
end
M.fmt_time = fmt_time

local Ref = {}
Ref.__index = Ref

--- conf: size, lateness, update_for (µs, numbers), by ("product_id"|"none")
function M.ref_window(conf)
  return setmetatable({
    size = conf.size, lateness = conf.lateness or 0, update_for = conf.update_for or 0,
    by = conf.by or "product_id",
    wins = {},    -- "start|key" -> window (open or kept)
    seen = {},    -- "product\0id" -> window
    wm = nil, max_t = nil,
    out = {},     -- rows emitted since the last take_rows()
  }, Ref)
end

local function row_of(win, size)
  local n, sp, spv, vol, buy = 0, 0, 0, 0, 0
  local hi, lo, first, last
  for _, t in ipairs(win.trades) do
    n = n + 1
    sp = sp + t.price
    spv = spv + t.price * t.size
    vol = vol + t.size
    if t.taker_side == "buy" then buy = buy + t.size end
    if not hi or t.price > hi then hi = t.price end
    if not lo or t.price < lo then lo = t.price end
    if not first or t.time < first.time or (t.time == first.time and t.trade_id < first.trade_id) then first = t end
    if not last or t.time > last.time or (t.time == last.time and t.trade_id > last.trade_id) then last = t end
  end
  return {
    product_id = win.key,
    window_start = fmt_time(win.start),
    window_end = fmt_time(win.start + size),
    trades = n,
    avg_price = sp / n,
    vwap = spv / vol,
    open = first.price,
    high = hi,
    low = lo,
    close = last.price,
    volume = vol,
    buy_volume = buy,
    sell_volume = vol - buy,
    revision = win.revision,
  }
end

function Ref:_emit(win)
  self.out[#self.out + 1] = row_of(win, self.size)
  win.revision = win.revision + 1
  win.emitted = true
end

function Ref:_forget(win)
  for _, t in ipairs(win.trades) do self.seen[t.product_id .. "\0" .. t.trade_id] = nil end
  self.wins[win.id] = nil
end

-- Emits the open windows the watermark closed, in (end, key) order, and
-- forgets the windows nothing can reach any more.
function Ref:_close()
  local closing = {}
  for _, win in pairs(self.wins) do
    if not win.emitted and win.start + self.size <= self.wm then closing[#closing + 1] = win end
  end
  table.sort(closing, function(a, b)
    if a.start ~= b.start then return a.start < b.start end
    return a.key < b.key -- LuaJIT compares strings bytewise
  end)
  for _, win in ipairs(closing) do self:_emit(win) end
  for _, win in pairs(self.wins) do
    if win.emitted and win.start + self.size + self.update_for <= self.wm then self:_forget(win) end
  end
end

--- Returns "accepted" | "late" | "duplicate" | "updated".
function Ref:add(t)
  local start = floor_div(t.time, self.size) * self.size
  local late = false
  if self.wm and start + self.size <= self.wm then
    if start + self.size + self.update_for <= self.wm then return "late" end
    late = true
  end
  local sk = t.product_id .. "\0" .. t.trade_id
  if self.seen[sk] then return "duplicate" end
  local key = self.by == "none" and "*" or t.product_id
  local id = start .. "|" .. key
  local win = self.wins[id]
  if not win then
    win = { id = id, start = start, key = key, trades = {}, revision = 0, emitted = false }
    self.wins[id] = win
  end
  win.trades[#win.trades + 1] = t
  self.seen[sk] = win
  if late then
    self:_emit(win)
    return "updated"
  end
  if self.max_t == nil or t.time > self.max_t then
    self.max_t = t.time
    local wm = t.time - self.lateness
    if self.wm == nil or wm > self.wm then
      self.wm = wm
      self:_close()
    end
  end
  return "accepted"
end

function Ref:advance(us)
  if self.wm ~= nil and us <= self.wm then return end
  self.wm = us
  self:_close()
end

function Ref:finish()
  local saved = self.wm
  self.wm = math.huge
  self:_close()
  self.wm = saved
  for _, win in pairs(self.wins) do self:_forget(win) end
end

function Ref:watermark() return self.wm end

function Ref:open_count()
  local n = 0
  for _, win in pairs(self.wins) do
    if not win.emitted then n = n + 1 end
  end
  return n
end

function Ref:take_rows()
  local r = self.out
  self.out = {}
  return r
end

---------------------------------------------------------------------------
-- Random trade streams.
---------------------------------------------------------------------------

--- n trades starting at t0 (µs), about `step` µs apart, each shifted back
--- by up to `jitter` µs; trade ids per product count up; about dup_pct % of
--- the trades repeat a recent id of their product (at another time, or the
--- same one); about a third of the times are rounded down to a whole 1, 5,
--- 10 or 30 s. Prices have 2 decimals, sizes 4.
function M.random_trades(n, opts)
  opts = opts or {}
  local t0, step, jitter = opts.t0 or 1755893490000000, opts.step or 250000, opts.jitter or 0
  local products = opts.products or { "BTC-USD", "ETH-USD", "LTC-USD" }
  local dup_pct = opts.dup_pct or 5
  local next_id, recent, out = {}, {}, {}
  for i = 1, n do
    local p = products[math.random(#products)]
    local time = t0 + i * step - math.random(0, jitter)
    -- Some times fall exactly on whole seconds / 5 s / 10 s / 30 s, i.e. on
    -- window boundaries, where off-by-one mistakes show.
    local align = ({ 1000000, 5000000, 10000000, 30000000 })[math.random(1, 12)]
    if align then time = time - time % align end
    local id
    if recent[p] and #recent[p] > 0 and math.random(100) <= dup_pct then
      id = recent[p][math.random(#recent[p])]
      if math.random(2) == 1 then
        -- sometimes the exact same trade again
        for j = #out, 1, -1 do
          if out[j].product_id == p and out[j].trade_id == id then time = out[j].time break end
        end
      end
    else
      next_id[p] = (next_id[p] or 1000) + 1
      id = next_id[p]
      recent[p] = recent[p] or {}
      table.insert(recent[p], id)
      if #recent[p] > 20 then table.remove(recent[p], 1) end
    end
    out[#out + 1] = {
      product_id = p,
      trade_id = id,
      price = math.random(100000, 200000) / 100,
      size = math.random(1, 50000) / 10000,
      time = time,
      taker_side = math.random(2) == 1 and "buy" or "sell",
    }
  end
  return out
end

--- Relative closeness for aggregates summed in possibly different orders.
function M.near(a, b, rel)
  rel = rel or 1e-12
  if a == b then return true end
  return math.abs(a - b) <= rel * math.max(math.abs(a), math.abs(b))
end

M.ROW_FIELDS = {
  "product_id", "window_start", "window_end", "trades", "avg_price", "vwap", "open", "high", "low", "close",
  "volume", "buy_volume", "sell_volume", "revision",
}
M.EXACT_FIELDS = {
  product_id = true, window_start = true, window_end = true, trades = true, open = true, high = true, low = true,
  close = true, revision = true,
}

--- Compares two lists of rows; returns nil, or a description of the first
--- difference.
function M.diff_rows(got, want)
  if #got ~= #want then
    return string.format("%d rows, expected %d", #got, #want)
  end
  for i = 1, #want do
    for _, f in ipairs(M.ROW_FIELDS) do
      local g, w = got[i][f], want[i][f]
      local same
      if M.EXACT_FIELDS[f] then same = g == w else same = type(g) == "number" and M.near(g, w) end
      if not same then
        return string.format("row %d (%s %s): %s = %s, expected %s", i, tostring(want[i].product_id),
          tostring(want[i].window_start), f, tostring(g), tostring(w))
      end
    end
  end
  return nil
end

return M
