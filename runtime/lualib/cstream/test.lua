-- cstream.test: tests of your own pipeline scripts, run by `cstream test SPEC`
-- (and usable from busted specs under `cstream spec`).
--
--   local T = require "cstream.test"
--   T.case("a trade makes a window", function()
--     local p = T.pipeline("scripts/replay.lua")          -- the script's pipeline
--     p:trade { product_id = "BTC-USD", price = "100", size = "2", time = "2025-01-01T00:00:01Z" }
--     p:advance("2025-01-01T00:00:40Z")                   -- the virtual clock
--     T.eq(#p.rows, 1)
--     T.eq(p.rows[1].vwap, 100)
--     T.eq(p.stats.late, 0)
--   end)
--
-- T.pipeline loads the script the way `cstream run` does — its options are
-- validated, nothing runs — and builds one of its pipelines with the
-- script's own window, filter/map hooks and aggregates. Its source is
-- replaced by the test, which feeds trades, raw messages or a capture; its
-- sinks are replaced by an in-memory collector: p.rows holds every record
-- the sinks would have received (window rows as tables with the same
-- fields as cs.jsonl writes, or v1 trade records without a window). Nothing
-- is opened or connected. p.stats holds the counters of the summary line
-- (trades, late, duplicates, invalid, windows, gaps, ...), refreshed after
-- every call. Time never comes from the wall clock: trades move the
-- watermark as on a replay, and p:advance(t) moves the feed's clock the
-- way a live feed's clock moves with the wall clock (the watermark goes to
-- t - lateness - 1 s of grace).
--
-- Times are RFC 3339 strings ("2025-01-01T00:00:01.5Z") or numbers of
-- seconds since the Unix epoch (T.time converts). docs/operations.md has
-- the whole API; scripts/replay_test.lua is an example.
local core = require "cstream.core"
local testing = require "cstream.testing"
local cs = require "cstream"

local M = {}
local GRACE = 1 -- seconds: CS_PIPELINE_GRACE_US

local function fail(msg, level) error(msg, (level or 1) + 1) end

---------------------------------------------------------------- times

--- T.time("2025-01-01T00:00:01Z") -> seconds since the epoch (a number
--- passes through).
function M.time(t)
  if type(t) == "number" then return t end
  if type(t) ~= "string" then fail("cstream.test: a time is an RFC 3339 string or seconds, got " .. type(t), 2) end
  local us, why = core.parse_time(t)
  if not us then fail("cstream.test: bad time '" .. t .. "': " .. tostring(why), 2) end
  return us / 1e6
end

-- Microseconds of a time given as a string or seconds.
local function to_us(t, level)
  if type(t) == "string" then
    local us, why = core.parse_time(t)
    if not us then fail("cstream.test: bad time '" .. t .. "': " .. tostring(why), level + 1) end
    return us
  end
  if type(t) ~= "number" then
    fail("cstream.test: a time is an RFC 3339 string or seconds, got " .. type(t), level + 1)
  end
  return math.floor(t * 1e6 + 0.5)
end

-- "YYYY-MM-DDTHH:MM:SS.ffffffZ" from a string (kept as given) or seconds.
local function time_str(t, level)
  if type(t) == "string" then return t end
  local us = to_us(t, level + 1)
  local secs = math.floor(us / 1e6)
  local s = core.format_time(secs * 1e6)
  return s:sub(1, -2) .. string.format(".%06dZ", us - secs * 1e6)
end

-- A decimal string as Coinbase sends it.
local function decimal(v)
  if type(v) == "string" then return v end
  if type(v) ~= "number" then fail("cstream.test: price and size are numbers or decimal strings", 3) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  local s = string.format("%.12f", v):gsub("0+$", "")
  return s
end

---------------------------------------------------------------- loading scripts

--- T.load(path, args) -> the pipelines the script declares (specs), in
--- order. `args` are its key=value arguments (cs.args). Errors in the
--- script are raised with its file:line.
function M.load(path, args)
  if type(path) ~= "string" then fail("cstream.test: T.load(path, args): path must be a string", 2) end
  local saved = { pipelines = cs._pipelines, metrics = cs._metrics, args = cs.args, arg = _G.arg }
  local declared, a, argv = {}, {}, { [0] = path }
  local keys = {}
  for k in pairs(args or {}) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do
    a[k] = tostring(args[k])
    argv[#argv + 1] = tostring(k) .. "=" .. tostring(args[k])
  end
  cs._pipelines, cs._metrics, cs.args, _G.arg = declared, nil, a, argv
  local chunk, err = loadfile(path)
  local ok = chunk ~= nil
  if chunk then ok, err = pcall(chunk, unpack(argv)) end
  cs._pipelines, cs._metrics, cs.args, _G.arg = saved.pipelines, saved.metrics, saved.args, saved.arg
  if not ok then error(err, 0) end -- the script's own file:line
  if #declared == 0 then fail("cstream.test: " .. path .. " declares no pipeline", 2) end
  return declared
end

---------------------------------------------------------------- the pipeline under test

local P = {}
P.__index = P

local open = {} -- pipelines of the running case, closed after it

local function refresh(p)
  local new = p._tp:rows(#p.rows + 1)
  for _, r in ipairs(new) do
    if r._ext_json then
      local cjson = require "cjson"
      for k, v in pairs(cjson.decode("{" .. r._ext_json .. "}")) do r[k] = v end
      r._ext_json = nil
    end
    p.rows[#p.rows + 1] = r
  end
  p.stats = p._tp:stats()
  return p
end

--- T.pipeline(path, args, name) -> a pipeline under test. `name` picks one
--- of several declared pipelines; `spec` tables from T.load work too:
--- T.pipeline(T.load(path)[2]).
function M.pipeline(path, args, name)
  local spec
  if type(path) == "table" then
    spec = path
  else
    local declared = M.load(path, args)
    if name then
      for _, d in ipairs(declared) do
        if d.name == name then spec = d end
      end
      if not spec then fail("cstream.test: " .. path .. " declares no pipeline named '" .. tostring(name) .. "'", 2) end
    elseif #declared > 1 then
      local names = {}
      for _, d in ipairs(declared) do names[#names + 1] = d.name end
      fail("cstream.test: " .. path .. " declares " .. #declared .. " pipelines (" .. table.concat(names, ", ") ..
        "): name one, T.pipeline(path, args, name)", 2)
    else
      spec = declared[1]
    end
  end
  local ok, tp = pcall(testing.pipeline, spec)
  if not ok then error(tp, 2) end
  local p = setmetatable({ name = spec.name, spec = spec, rows = {}, stats = {}, _tp = tp, _ids = {}, _seq = 0 }, P)
  open[#open + 1] = p
  return refresh(p)
end

--- p:line(json): one raw feed message, exactly as a source delivers it.
function P:line(json)
  if type(json) ~= "string" then fail("cstream.test: p:line(json) takes a string", 2) end
  self._tp:line(json)
  return refresh(self)
end

--- p:lines{json, ...}
function P:lines(list)
  for _, l in ipairs(list) do self._tp:line(l) end
  return refresh(self)
end

--- p:capture(path): every line of a capture (.jsonl or .jsonl.gz).
function P:capture(path)
  self._tp:capture(path)
  return refresh(self)
end

local function json_str(s) return '"' .. tostring(s):gsub('[%c"\\]', function(c)
  return string.format("\\u%04x", c:byte())
end) .. '"' end

--- p:trade{product_id, trade_id, price, size, side | taker_side, time, type}
-- A Coinbase Exchange `match` message. Defaults: product_id "BTC-USD",
-- trade_id the product's next id (1, 2, ...), price 100, size 1,
-- taker_side "buy"; `side` is the maker's side as on the feed (it wins over
-- taker_side); type "last_match" marks a replayed last trade. time is
-- required.
function P:trade(t)
  if type(t) ~= "table" then fail("cstream.test: p:trade{...} takes a table", 2) end
  if t.time == nil then fail("cstream.test: p:trade{...}: `time` is required", 2) end
  local product = t.product_id or "BTC-USD"
  local id = t.trade_id
  if id == nil then
    id = (self._ids[product] or 0) + 1
  end
  if type(id) == "number" and id > (self._ids[product] or 0) then self._ids[product] = id end
  local side = t.side
  if side == nil then
    local taker = t.taker_side or "buy"
    side = taker == "buy" and "sell" or taker == "sell" and "buy" or taker
  end
  self._seq = self._seq + 1
  local msg = string.format(
    '{"type":%s,"trade_id":%s,"maker_order_id":"m","taker_order_id":"t","side":%s,"size":%s,"price":%s,' ..
    '"product_id":%s,"sequence":%d,"time":%s}',
    json_str(t.type or "match"), type(id) == "number" and string.format("%d", id) or json_str(id), json_str(side),
    json_str(decimal(t.size or 1)), json_str(decimal(t.price or 100)), json_str(product), self._seq,
    json_str(time_str(t.time, 2)))
  self._tp:line(msg)
  return refresh(self)
end

--- p:trades{ {...}, {...} }
function P:trades(list)
  for _, t in ipairs(list) do self:trade(t) end
  return self
end

--- p:heartbeat{product_id, last_trade_id, time}: the feed's heartbeat (it
--- announces the last trade id: gaps).
function P:heartbeat(h)
  local product = h.product_id or "BTC-USD"
  local last = h.last_trade_id or (self._ids[product] or 0)
  self._seq = self._seq + 1
  self._tp:line(string.format('{"type":"heartbeat","sequence":%d,"last_trade_id":%d,"product_id":%s,"time":%s}',
    self._seq, last, json_str(product), json_str(time_str(h.time or 0, 2))))
  return refresh(self)
end

--- p:advance(time): the virtual clock. As if the feed's clock now read
--- `time`: the watermark moves to time - lateness - 1 s (what a live feed
--- does as the wall clock runs), closing the windows that ended before.
function P:advance(t)
  self._tp:advance(to_us(t, 2))
  return refresh(self)
end

--- p:finish(): end of input: every open window is emitted.
function P:finish()
  self._tp:finish()
  return refresh(self)
end

--- p:row(product_id, window_start) -> the latest row of that window, or nil.
function P:row(product, start)
  for i = #self.rows, 1, -1 do
    local r = self.rows[i]
    if r.product_id == product and (start == nil or r.window_start == start) then return r end
  end
  return nil
end

--- p:close(): frees the pipeline (done for you after each case).
function P:close()
  self._tp:close()
end

M.grace = GRACE

---------------------------------------------------------------- assertions

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 2 then return "{...}" end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = (type(k) == "number" and "" or (tostring(k) .. " = ")) .. show(v[k], depth + 1)
    if #parts > 16 then parts[#parts + 1] = "..."; break end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function deep_eq(a, b, path)
  if type(a) ~= type(b) then return false, path end
  if type(a) ~= "table" then return a == b, path end
  for k, v in pairs(a) do
    local ok, where = deep_eq(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) end
  end
  return true
end

--- T.eq(got, want, msg): equal (tables compared deeply, numbers exactly).
function M.eq(got, want, msg)
  local ok, where = deep_eq(got, want, "")
  if not ok then
    fail((msg and (msg .. ": ") or "") .. "expected " .. show(want) .. ", got " .. show(got) ..
      (where ~= "" and (" (differs at " .. where:sub(2) .. ")") or ""), 2)
  end
end

--- T.near(got, want, rel): |got - want| <= rel * max(|got|, |want|) (rel 1e-9).
function M.near(got, want, rel, msg)
  rel = rel or 1e-9
  if type(got) ~= "number" or math.abs(got - want) > rel * math.max(math.abs(got), math.abs(want)) then
    fail((msg and (msg .. ": ") or "") .. "expected about " .. tostring(want) .. ", got " .. show(got), 2)
  end
end

--- T.truthy(v, msg)
function M.truthy(v, msg)
  if not v then fail(msg or ("expected a true value, got " .. show(v)), 2) end
end

--- T.raises(fn, pattern): fn must raise an error whose message contains
--- `pattern` (plain text); returns the message.
function M.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then fail("expected an error" .. (pattern and (" containing '" .. pattern .. "'") or ""), 2) end
  err = tostring(err)
  if pattern and not err:find(pattern, 1, true) then
    fail("expected an error containing '" .. pattern .. "', got: " .. err, 2)
  end
  return err
end

---------------------------------------------------------------- cases and the runner

local cases

--- T.case(name, fn): declares a test case (`cstream test SPEC` runs them in order).
function M.case(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then
    fail("cstream.test: T.case(name, function() ... end)", 2)
  end
  if not cases then fail("cstream.test: T.case is for spec files run by `cstream test`", 2) end
  local info = debug.getinfo(2, "Sl")
  cases[#cases + 1] = { name = name, fn = fn, where = info.short_src .. ":" .. tostring(info.currentline) }
end

local function first_line(s)
  s = tostring(s)
  return s:match("^[^\n]*")
end

local function close_open()
  for i = #open, 1, -1 do
    pcall(P.close, open[i])
    open[i] = nil
  end
end

--- Runs a spec file's cases; returns the exit status (0 passed, 1 a case
--- failed, 3 the spec has an error). Prints TAP on stdout.
function M.run_file(path)
  cases = {}
  local chunk, err = loadfile(path)
  if not chunk then
    io.stderr:write("cstream: " .. tostring(err) .. "\n")
    return 3
  end
  local ok
  ok, err = xpcall(chunk, debug.traceback)
  close_open()
  if not ok then
    io.stderr:write("cstream: " .. first_line(err) .. "\n")
    return 3
  end
  local list = cases
  cases = nil
  if #list == 0 then
    io.stderr:write("cstream: " .. path .. ": no test case (declare them with T.case(name, fn))\n")
    return 3
  end
  io.stdout:write("1.." .. #list .. "\n")
  local failed = 0
  for i, c in ipairs(list) do
    local cok, cerr = xpcall(c.fn, debug.traceback)
    close_open()
    collectgarbage()
    if cok then
      io.stdout:write(string.format("ok %d - %s\n", i, c.name))
    else
      failed = failed + 1
      io.stdout:write(string.format("not ok %d - %s\n#   %s\n", i, c.name, first_line(cerr)))
    end
    io.stdout:flush()
  end
  io.stdout:write(string.format("# %d cases: %d passed, %d failed\n", #list, #list - failed, failed))
  return failed > 0 and 1 or 0
end

return M
