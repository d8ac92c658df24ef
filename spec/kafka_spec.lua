-- cs.kafka: one constructor for a plugin that is both a source and a sink;
-- the spec takes the role cs.pipeline gives it, and its options are checked
-- for that role with errors at the constructor's line.
local helpers = require "spec.helpers"
local cs = require "cstream"

local SRC = helpers.source()
local error_of, line = helpers.error_of, helpers.line

describe("cs.kafka", function()
  before_each(function() helpers.reset_pipelines(cs) end)
  after_each(function() helpers.reset_pipelines(cs) end)

  it("is both a source and a sink plugin", function()
    assert.is_table(cs.schemas.sources.kafka)
    assert.is_table(cs.schemas.sinks.kafka)
  end)

  it("becomes a source or a sink where cs.pipeline puts it", function()
    local ln = line() + 1
    local src = cs.kafka { brokers = "embedded", topic = "trades", group = "g", start = "earliest" }
    local sink = cs.kafka { brokers = "embedded", topic = "candles", key = "none" }
    local p = cs.pipeline { name = "k", source = src, window = cs.tumbling { size = "30s" }, sink = sink }
    assert.equal("source", p.source.kind)
    assert.equal("kafka", p.source.plugin)
    assert.equal("g", p.source.opts.group)
    assert.equal("earliest", p.source.opts.start)
    assert.equal("committed", cs.kafka { brokers = "b", topic = "t" }.roles.source.opts.start)
    assert.equal(SRC .. ":" .. ln, p.source.where)
    assert.equal("sink", p.sinks[1].kind)
    assert.equal("none", p.sinks[1].opts.key)
    assert.equal("lz4", p.sinks[1].opts.compression)
    assert.equal("1s", p.sinks[1].opts.clock)
  end)

  it("rejects an option neither role knows, at once", function()
    local ln, err = line(), error_of(function() cs.kafka { brokers = "b", topic = "t", grup = "g" } end)
    assert.equal(SRC .. ":" .. ln .. ": cs.kafka: unknown option 'grup' (did you mean 'group'?)", err)
  end)

  it("rejects a source option on a sink, at the constructor's line", function()
    local ln = line() + 1
    local k = cs.kafka { brokers = "b", topic = "t", group = "g" }
    local err = error_of(function() cs.pipeline { source = cs.replay { path = "x" }, sink = k } end)
    assert.is_string(err)
    assert.is_true(helpers.starts_with(err, SRC .. ":" .. ln .. ": cs.kafka (as a sink): unknown option 'group'"), err)
  end)

  it("requires brokers and topic in either role", function()
    local k = cs.kafka { brokers = "b" }
    local err = error_of(function() cs.pipeline { source = k, sink = cs.discard {} } end)
    assert.is_true(helpers.contains(err, "cs.kafka (as a source): option 'topic' is required"), err)
  end)

  it("refuses value = raw where frames cannot be forwarded, at the sink's line", function()
    local ln = line() + 1
    local k = cs.kafka { brokers = "b", topic = "t", value = "raw" }
    local err = error_of(function()
      cs.pipeline { source = cs.replay { path = "x" }, window = cs.tumbling { size = "30s" }, sink = k }
    end)
    assert.is_true(helpers.starts_with(err, SRC .. ":" .. ln .. ": cs.kafka: option 'value' = \"raw\""), err)
    assert.is_true(helpers.contains(err, "a pipeline with a window"), err)
    err = error_of(function()
      cs.pipeline { source = cs.kafka { brokers = "b", topic = "in" }, sink = k }
    end)
    assert.is_true(helpers.contains(err, "cs.kafka as the source"), err)
    err = error_of(function()
      cs.pipeline { source = cs.replay { path = "x" }, map = function(t) return t end, sink = k }
    end)
    assert.is_true(helpers.contains(err, "filter/map"), err)
    local p = cs.pipeline { name = "raw", source = cs.coinbase {}, sink = k }
    assert.equal("raw", p.sinks[1].opts.value)
    assert.equal("record", cs.kafka { brokers = "b", topic = "t" }.roles.sink.opts.value)
  end)

  it("checks value types for the role", function()
    local k = cs.kafka { brokers = "b", topic = "t", compression = "brotli" }
    local err = error_of(function() cs.pipeline { source = cs.replay { path = "x" }, sink = k } end)
    assert.is_true(helpers.contains(err, "option 'compression' 'brotli' is not one of none|gzip|snappy|lz4|zstd"), err)
  end)
end)
