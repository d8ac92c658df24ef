-- The Lua DSL (runtime/lualib/cstream/init.lua, schema.lua): constructors,
-- validation messages and where they point, cs.pipeline, cs.args/cs.arg.
local helpers = require "spec.helpers"
local cs = require "cstream"
local core = require "cstream.core"

local SRC = helpers.source() -- this file as error positions name it
local error_of, line = helpers.error_of, helpers.line

-- Asserts that `err` is raised at this file's line `ln` and contains every
-- piece of `pieces` (plain text).
local function assert_error_at(err, ln, pieces)
  assert.is_string(err, "expected an error")
  local prefix = SRC .. ":" .. ln .. ": "
  assert.is_true(helpers.starts_with(err, prefix), ("error %q does not start with %q"):format(err, prefix))
  for _, p in ipairs(pieces) do
    assert.is_true(helpers.contains(err, p), ("error %q does not mention %q"):format(err, p))
  end
end

describe("cstream API", function()
  before_each(function() helpers.reset_pipelines(cs) end)
  after_each(function() helpers.reset_pipelines(cs) end)

  it("exposes the version and the built-in aggregate names", function()
    assert.is_string(cs.version)
    assert.equal(core.version, cs.version)
    assert.same({ "trades", "avg_price", "vwap", "open", "high", "low", "close", "volume", "buy_volume",
      "sell_volume" }, core.aggregates)
    assert.is_table(cs.schemas.sources.replay)
    assert.is_table(cs.schemas.sinks.jsonl)
    assert.is_table(cs.schemas.sinks.discard)
  end)

  describe("constructors", function()
    it("cs.replay returns a source spec", function()
      local ln, r = line(), cs.replay { path = "data/x.jsonl", rate = 2 }
      assert.equal("source", r.kind)
      assert.equal("replay", r.plugin)
      assert.equal("data/x.jsonl", r.opts.path)
      assert.equal(2, r.opts.rate)
      assert.equal(SRC .. ":" .. ln, r.where)
    end)

    it("cs.jsonl and cs.discard return sink specs", function()
      local j = cs.jsonl { path = "-", fsync = true }
      assert.equal("sink", j.kind)
      assert.equal("jsonl", j.plugin)
      assert.equal("-", j.opts.path)
      assert.equal(true, j.opts.fsync)
      local d = cs.discard {}
      assert.equal("sink", d.kind)
      assert.equal("discard", d.plugin)
      assert.same({}, d.opts)
    end)

    it("accepts booleans, numbers and durations given as strings (script arguments)", function()
      assert.equal(false, cs.jsonl { path = "-", fsync = "false" }.opts.fsync)
      assert.equal(true, cs.jsonl { path = "-", truncate = "true" }.opts.truncate)
      assert.equal(10, cs.replay { path = "x", rate = "10" }.opts.rate)
      assert.equal(1024, cs.replay { path = "x", max_line = "1024" }.opts.max_line)
      assert.equal("1m", cs.tumbling { size = "1m" }.opts.size)
      assert.equal(60, cs.tumbling { size = 60 }.opts.size)
    end)

    it("cs.tumbling returns a window spec with every built-in aggregate by default", function()
      local w = cs.tumbling { size = "30s", lateness = "5s", by = "none" }
      assert.equal("window", w.kind)
      assert.equal("tumbling", w.plugin)
      assert.equal("30s", w.opts.size)
      assert.equal("5s", w.opts.lateness)
      assert.equal("none", w.opts.by)
      assert.same(core.aggregates, w.opts.aggregates)
      assert.same({}, w.custom)
    end)

    it("cs.tumbling keeps the chosen aggregates in row order", function()
      assert.same({ "trades", "vwap" }, cs.tumbling { size = "30s", aggregates = { "vwap", "trades" } }.opts.aggregates)
      assert.same(core.aggregates, cs.tumbling { size = "30s", aggregates = { "all" } }.opts.aggregates)
      assert.same({ "trades" }, cs.tumbling { size = "30s", aggregates = { "trades", "trades" } }.opts.aggregates)
      assert.same({}, cs.tumbling { size = "30s", aggregates = {} }.opts.aggregates)
    end)

    it("cs.aggregate returns an aggregate spec usable in cs.tumbling", function()
      local a = cs.aggregate {
        name = "n_big",
        init = function() return 0 end,
        add = function(s, t) return s + (t.size > 1 and 1 or 0) end,
        result = function(s) return s end,
      }
      assert.equal("aggregate", a.kind)
      assert.equal("n_big", a.opts.name)
      local w = cs.tumbling { size = "30s", aggregates = { "vwap", a } }
      assert.same({ "vwap" }, w.opts.aggregates)
      assert.equal(1, #w.custom)
      assert.equal("n_big", w.custom[1].name)
      assert.equal(a.opts.add, w.custom[1].add)
    end)

    -- The option tables say what the defaults are (cs.schemas, from C) ...
    it("publishes each option's default in cs.schemas", function()
      local function default_of(defs, name)
        for _, d in ipairs(defs) do
          if d.name == name then return d.default end
        end
      end
      assert.equal("0", default_of(cs.schemas.sources.replay.options, "rate"))
      assert.equal("16777216", default_of(cs.schemas.sources.replay.options, "max_line"))
      assert.equal("false", default_of(cs.schemas.sinks.jsonl.options, "fsync"))
      assert.equal("0", default_of(cs.schemas.tumbling.options, "lateness"))
      assert.equal("product_id", default_of(cs.schemas.tumbling.options, "by"))
      assert.equal("drop", default_of(cs.schemas.tumbling.options, "on_late"))
      assert.is_nil(default_of(cs.schemas.sources.replay.options, "path")) -- required
      assert.is_nil(default_of(cs.schemas.tumbling.options, "size"))
    end)

    -- ... and the specs carry every option's value, defaults filled in,
    -- with `given` naming the ones the script set (for `cstream check`).
    it("fills in defaults (cs.replay, cs.jsonl, cs.tumbling, cs.pipeline)", function()
      local r = cs.replay { path = "x" }
      assert.equal(0, tonumber(r.opts.rate))
      assert.equal(16777216, tonumber(r.opts.max_line))
      local j = cs.jsonl { path = "-" }
      assert.equal(false, j.opts.fsync)
      assert.equal(false, j.opts.truncate)
      local w = cs.tumbling { size = "30s" }
      assert.equal(0, core.parse_duration(tostring(w.opts.lateness)))
      assert.equal("product_id", w.opts.by)
      assert.equal("drop", w.opts.on_late)
      local p = cs.pipeline { source = r, window = w, sink = j }
      assert.equal("pipeline1", p.name)
      assert.same({ path = true }, r.given)
      assert.same({ size = true }, w.given)
    end)
  end)

  describe("validation errors", function()
    it("name an unknown option, the call, and suggest the closest one", function()
      local ln, err = line(), error_of(function() cs.replay { patth = "x" } end)
      assert_error_at(err, ln, { "cs.replay", "'patth'", "did you mean 'path'?" })
      ln, err = line(), error_of(function() cs.jsonl { path = "-", fsycn = true } end)
      assert_error_at(err, ln, { "cs.jsonl", "'fsycn'", "did you mean 'fsync'?" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", latenes = "5s" } end)
      assert_error_at(err, ln, { "cs.tumbling", "'latenes'", "did you mean 'lateness'?" })
      ln, err = line(), error_of(function() cs.discard { path = "-" } end)
      assert_error_at(err, ln, { "cs.discard", "unknown option 'path'" })
      ln, err = line(), error_of(function() cs.aggregate { name = "x", init = print, add = print, reslt = print } end)
      assert_error_at(err, ln, { "cs.aggregate", "'reslt'", "did you mean 'result'?" })
      ln, err = line(), error_of(function()
        cs.pipeline { source = cs.replay { path = "x" }, window = cs.tumbling { size = 30 }, snk = cs.discard {} }
      end)
      assert_error_at(err, ln + 1, { "cs.pipeline", "'snk'", "did you mean 'sink'?" })
    end)

    it("list the valid options when nothing is close", function()
      local ln, err = line(), error_of(function() cs.replay { path = "x", zzzzzzzz = 1 } end)
      assert_error_at(err, ln, { "cs.replay", "'zzzzzzzz'", "path", "rate", "max_line" })
      assert.is_false(helpers.contains(err, "did you mean"))
    end)

    it("name a wrong type", function()
      local ln, err = line(), error_of(function() cs.replay { path = 5 } end)
      assert_error_at(err, ln, { "cs.replay", "'path'", "string", "number" })
      ln, err = line(), error_of(function() cs.replay { path = "x", rate = "fast" } end)
      assert_error_at(err, ln, { "cs.replay", "'rate'", "number", "fast" })
      ln, err = line(), error_of(function() cs.replay { path = "x", rate = {} } end)
      assert_error_at(err, ln, { "'rate'", "number", "table" })
      ln, err = line(), error_of(function() cs.replay { path = "x", rate = 0 / 0 } end)
      assert_error_at(err, ln, { "'rate'", "number" })
      ln, err = line(), error_of(function() cs.replay { path = "x", max_line = 1.5 } end)
      assert_error_at(err, ln, { "'max_line'", "whole number" })
      ln, err = line(), error_of(function() cs.jsonl { path = "-", fsync = "yes" } end)
      assert_error_at(err, ln, { "cs.jsonl", "'fsync'", "true or false" })
      ln, err = line(), error_of(function() cs.jsonl { path = "-", fsync = 1 } end)
      assert_error_at(err, ln, { "'fsync'", "true or false" })
      ln, err = line(), error_of(function() cs.tumbling { size = true } end)
      assert_error_at(err, ln, { "cs.tumbling", "'size'", "duration", "boolean" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", by = 1 } end)
      assert_error_at(err, ln, { "cs.tumbling", "'by'", "product_id|none" })
    end)

    it("reject calls without a table, and positional values", function()
      local ln, err = line(), error_of(function() cs.replay "data.jsonl" end)
      assert_error_at(err, ln, { "cs.replay", "table", "string" })
      ln, err = line(), error_of(function() cs.replay() end)
      assert_error_at(err, ln, { "cs.replay", "table", "nil" })
      ln, err = line(), error_of(function() cs.replay { "data.jsonl" } end)
      assert_error_at(err, ln, { "cs.replay", "named", "position 1" })
      ln, err = line(), error_of(function() cs.tumbling(30) end)
      assert_error_at(err, ln, { "cs.tumbling", "table" })
      ln, err = line(), error_of(function() cs.pipeline "p" end)
      assert_error_at(err, ln, { "cs.pipeline", "table" })
    end)

    it("name a missing required option", function()
      local ln, err = line(), error_of(function() cs.replay {} end)
      assert_error_at(err, ln, { "cs.replay", "'path'", "required" })
      ln, err = line(), error_of(function() cs.jsonl {} end)
      assert_error_at(err, ln, { "cs.jsonl", "'path'", "required" })
      ln, err = line(), error_of(function() cs.tumbling {} end)
      assert_error_at(err, ln, { "cs.tumbling", "'size'", "required" })
      ln, err = line(), error_of(function() cs.tumbling { lateness = "5s" } end)
      assert_error_at(err, ln, { "cs.tumbling", "'size'", "required" })
      ln, err = line(), error_of(function() cs.aggregate { name = "x", init = print, add = print } end)
      assert_error_at(err, ln, { "cs.aggregate", "'result'", "required" })
      ln, err = line(), error_of(function() cs.pipeline { window = cs.tumbling { size = 30 }, sink = cs.discard {} } end)
      assert_error_at(err, ln, { "cs.pipeline", "'source'", "required" })
      ln, err = line(), error_of(function() cs.pipeline { source = cs.replay { path = "x" } } end)
      assert_error_at(err, ln, { "cs.pipeline", "'sink'", "required" })
    end)

    it("allow a pipeline without a window (trades go to the sinks)", function()
      local p = cs.pipeline { name = "raw", source = cs.replay { path = "x" }, sink = cs.jsonl { path = "-" } }
      assert.is_nil(p.window)
      assert.equal("raw", p.name)
    end)

    it("reject bad durations", function()
      for _, bad in ipairs { "30x", "1d", "-1s", "abc", "", "1e3", "s", " 30s", "30 s", "0x10" } do
        local ln, err = line(), error_of(function() cs.tumbling { size = "30s", lateness = bad } end)
        assert_error_at(err, ln, { "cs.tumbling", "'lateness'", "'" .. bad .. "' is not a duration" })
      end
      local ln, err = line(), error_of(function() cs.tumbling { size = "30s", lateness = -1 } end)
      assert_error_at(err, ln, { "'lateness'", "'-1' is not a duration" })
      ln, err = line(), error_of(function() cs.tumbling { size = "thirty" } end)
      assert_error_at(err, ln, { "'size'", "not a duration" })
    end)

    it("accept good durations", function()
      for _, good in ipairs { "0", "0s", "500ms", "5s", "1.5s", "1m", "1h", "250us", "5" } do
        assert.equal(good, cs.tumbling { size = "30s", lateness = good }.opts.lateness)
      end
      assert.equal(2.5, cs.tumbling { size = "30s", lateness = 2.5 }.opts.lateness)
      for _, good in ipairs { "1s", "30s", "1m", "1h", "30", "2" } do
        assert.equal(good, cs.tumbling { size = good }.opts.size)
      end
    end)

    it("reject a window size that is not a whole number of seconds > 0", function()
      for _, bad in ipairs { "1.5s", "500ms", "0", "0s", "90500ms", "250us" } do
        local ln, err = line(), error_of(function() cs.tumbling { size = bad } end)
        assert_error_at(err, ln, { "cs.tumbling", "'size'", "'" .. bad .. "'", "whole number of seconds" })
      end
      for _, bad in ipairs { 1.5, 0, -30 } do
        local ln, err = line(), error_of(function() cs.tumbling { size = bad } end)
        assert_error_at(err, ln, { "cs.tumbling", "'size'" })
      end
    end)

    it("check `by` against its choices, with a suggestion", function()
      assert.equal("product_id", cs.tumbling { size = "30s", by = "product_id" }.opts.by)
      assert.equal("none", cs.tumbling { size = "30s", by = "none" }.opts.by)
      local ln, err = line(), error_of(function() cs.tumbling { size = "30s", by = "prodcut_id" } end)
      assert_error_at(err, ln, { "cs.tumbling", "'by'", "'prodcut_id'", "product_id|none", "did you mean 'product_id'?" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", by = "nnoe" } end)
      assert_error_at(err, ln, { "did you mean 'none'?" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", by = "symbol" } end)
      assert_error_at(err, ln, { "'symbol'", "product_id|none" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", on_late = "keep" } end)
      assert_error_at(err, ln, { "'on_late'", "'keep'" })
    end)

    it("check the aggregates list", function()
      local ln, err = line(), error_of(function() cs.tumbling { size = "30s", aggregates = { "vwap", "volme" } } end)
      assert_error_at(err, ln, { "cs.tumbling", "'aggregates'", "'volme'", "did you mean 'volume'?" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", aggregates = { "avgprice" } } end)
      assert_error_at(err, ln, { "'avgprice'", "did you mean 'avg_price'?" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", aggregates = { "median_of_everything" } } end)
      assert_error_at(err, ln, { "'median_of_everything'", "built-ins", "vwap" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", aggregates = "vwap" } end)
      assert_error_at(err, ln, { "'aggregates'", "list", "string" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", aggregates = { "vwap", 5 } } end)
      assert_error_at(err, ln, { "'aggregates'", "item 2", "number" })
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", aggregates = { cs.discard {} } } end)
      assert_error_at(err, ln, { "'aggregates'", "item 1" })
      local function agg(name)
        return cs.aggregate { name = name, init = function() return 0 end, add = function(s) return s + 1 end,
          result = function(s) return s end }
      end
      ln, err = line(), error_of(function() cs.tumbling { size = "30s", aggregates = { agg "n", "vwap", agg "n" } } end)
      assert_error_at(err, ln, { "'aggregates'", "two aggregates are named 'n'" })
    end)

    it("check cs.aggregate's functions and name", function()
      local ln, err = line(), error_of(function() cs.aggregate { name = "x", init = 0, add = print, result = print } end)
      assert_error_at(err, ln, { "cs.aggregate", "'init'", "function", "number" })
      ln, err = line(), error_of(function() cs.aggregate { name = "x", init = print, add = "f", result = print } end)
      assert_error_at(err, ln, { "cs.aggregate", "'add'", "function", "string" })
      ln, err = line(), error_of(function() cs.aggregate { name = "vwap", init = print, add = print, result = print } end)
      assert_error_at(err, ln, { "cs.aggregate", "'vwap'", "built-in" })
      ln, err = line(), error_of(function() cs.aggregate { name = "my agg", init = print, add = print, result = print } end)
      assert_error_at(err, ln, { "cs.aggregate", "'my agg'", "identifier" })
      ln, err = line(), error_of(function() cs.aggregate { name = 7, init = print, add = print, result = print } end)
      assert_error_at(err, ln, { "cs.aggregate", "'name'", "string" })
    end)
  end)

  describe("cs.pipeline", function()
    local function parts()
      return cs.replay { path = "data/x.jsonl" }, cs.tumbling { size = "30s" }, cs.jsonl { path = "-" }
    end

    it("records pipelines in order, with default names", function()
      local src, win, sink = parts()
      local ln, p1 = line(), cs.pipeline { source = src, window = win, sink = sink }
      local p2 = cs.pipeline { name = "btc-30s.v2", source = src, window = win, sink = { sink, cs.discard {} } }
      local p3 = cs.pipeline { source = src, window = win, sink = sink }
      assert.equal(3, #cs._pipelines)
      assert.equal(p1, cs._pipelines[1])
      assert.equal(p2, cs._pipelines[2])
      assert.equal(p3, cs._pipelines[3])
      assert.equal("pipeline1", p1.name)
      assert.equal("btc-30s.v2", p2.name)
      assert.equal("pipeline3", p3.name)
      assert.equal(src, p1.source)
      assert.equal(win, p1.window)
      assert.same({ sink }, p1.sinks)
      assert.equal(2, #p2.sinks)
      assert.equal(SRC .. ":" .. ln, p1.where)
      assert.is_nil(p1.filter)
      assert.is_nil(p1.map)
    end)

    it("takes filter and map functions", function()
      local src, win, sink = parts()
      local f, m = function() return true end, function(t) return t end
      local p = cs.pipeline { source = src, window = win, sink = sink, filter = f, map = m }
      assert.equal(f, p.filter)
      assert.equal(m, p.map)
      local ln, err = line(), error_of(function() cs.pipeline { source = src, window = win, sink = sink, filter = "x" } end)
      assert_error_at(err, ln, { "cs.pipeline", "'filter'", "function", "string" })
      ln, err = line(), error_of(function() cs.pipeline { source = src, window = win, sink = sink, map = {} } end)
      assert_error_at(err, ln, { "cs.pipeline", "'map'", "function", "table" })
    end)

    it("rejects duplicate names, naming where the first one is", function()
      local src, win, sink = parts()
      local ln1 = line(); cs.pipeline { name = "same", source = src, window = win, sink = sink }
      local ln, err = line(), error_of(function() cs.pipeline { name = "same", source = src, window = win, sink = sink } end)
      assert_error_at(err, ln, { "cs.pipeline", "'same'", "already declared", SRC .. ":" .. ln1 })
      assert.equal(1, #cs._pipelines)
      -- a default name counts too
      cs.pipeline { source = src, window = win, sink = sink } -- pipeline2
      ln, err = line(), error_of(function() cs.pipeline { name = "pipeline2", source = src, window = win, sink = sink } end)
      assert_error_at(err, ln, { "'pipeline2'", "already declared" })
    end)

    it("checks the kinds of its parts", function()
      local src, win, sink = parts()
      local ln, err = line(), error_of(function() cs.pipeline { source = sink, window = win, sink = sink } end)
      assert_error_at(err, ln, { "cs.pipeline", "'source'", "sink" })
      ln, err = line(), error_of(function() cs.pipeline { source = { path = "x" }, window = win, sink = sink } end)
      assert_error_at(err, ln, { "'source'", "table" })
      ln, err = line(), error_of(function() cs.pipeline { source = src, window = src, sink = sink } end)
      assert_error_at(err, ln, { "'window'", "source" })
      ln, err = line(), error_of(function() cs.pipeline { source = src, window = win, sink = win } end)
      assert_error_at(err, ln, { "'sink'" })
      ln, err = line(), error_of(function() cs.pipeline { source = src, window = win, sink = {} } end)
      assert_error_at(err, ln, { "'sink'" })
      ln, err = line(), error_of(function() cs.pipeline { source = src, window = win, sink = { sink, src } } end)
      assert_error_at(err, ln, { "'sink'", "item 2", "source" })
      ln, err = line(), error_of(function() cs.pipeline { name = "a b", source = src, window = win, sink = sink } end)
      assert_error_at(err, ln, { "'name'", "'a b'" })
      ln, err = line(), error_of(function() cs.pipeline { name = 5, source = src, window = win, sink = sink } end)
      assert_error_at(err, ln, { "'name'", "string" })
      assert.equal(0, #cs._pipelines)
    end)
  end)

  describe("cs.args and cs.arg", function()
    local saved
    before_each(function()
      saved = {}
      for k, v in pairs(cs.args) do saved[k] = v end
    end)
    after_each(function()
      for k in pairs(cs.args) do cs.args[k] = nil end
      for k, v in pairs(saved) do cs.args[k] = v end
    end)

    it("reads script arguments with a default", function()
      assert.is_table(cs.args)
      cs.args.product = "ETH-USD"
      cs.args.size = "1m"
      assert.equal("ETH-USD", cs.arg("product", "BTC-USD"))
      assert.equal("1m", cs.arg("size"))
      assert.equal("BTC-USD", cs.arg("missing", "BTC-USD"))
      assert.is_nil(cs.arg("missing"))
      cs.args.empty = ""
      assert.equal("", cs.arg("empty", "x")) -- an empty value is a value
      cs.args.f = false
      assert.equal(false, cs.arg("f", true))
    end)

    it("feeds constructors (string values are converted and validated)", function()
      cs.args.rate = "4"
      cs.args.lateness = "2s"
      assert.equal(4, cs.replay { path = "x", rate = cs.arg("rate", 0) }.opts.rate)
      assert.equal("2s", cs.tumbling { size = "30s", lateness = cs.arg("lateness", "0") }.opts.lateness)
      cs.args.rate = "quick"
      local ln, err = line(), error_of(function() cs.replay { path = "x", rate = cs.arg("rate", 0) } end)
      assert_error_at(err, ln, { "'rate'", "'quick'" })
    end)

    it("cs.duration parses like the engine", function()
      assert.equal(30000000, cs.duration("30s"))
      assert.equal(500000, cs.duration("500ms"))
      assert.equal(30000000, cs.duration(30))
      local v, err = cs.duration("30 seconds")
      assert.is_nil(v)
      assert.is_true(helpers.contains(err, "'30 seconds'"))
    end)
  end)
end)
