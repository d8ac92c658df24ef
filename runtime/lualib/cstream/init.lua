-- cstream: the Lua API scripts use to declare pipelines.
--
--   local cs = require "cstream"
--   cs.pipeline {
--     name   = "btc-30s",
--     source = cs.replay { path = "data/sample.jsonl", rate = 0 },
--     window = cs.tumbling { size = "30s", lateness = "5s", by = "product_id" },
--     sink   = cs.jsonl { path = "-" },
--   }
--
-- Declaring is all a script does: cs.<plugin>{...} validates its options
-- (against the plugin's option table in C) and returns a passive spec;
-- cs.pipeline records the topology. Nothing runs while the script
-- executes; cstream builds and starts the pipelines afterwards. Mistakes
-- raise at the script's line (error level 2).
local core = require "cstream.core"
local schema = require "cstream.schema"

local cs = {
  version = core.version,
  args = {},       -- key=value script arguments (strings)
  _pipelines = {}, -- declared pipelines, in order
}

local schemas = core.schemas()

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  if not info then return "?" end
  return info.short_src .. ":" .. tostring(info.currentline)
end

local SPEC = {} -- metatable marking a spec made by a constructor
local function is_spec(v, kind) return getmetatable(v) == SPEC and (kind == nil or v.kind == kind) end

local function make_constructor(kind, name, defs)
  return function(args)
    local opts, given = schema.validate("cs." .. name, defs, args)
    if not opts then error(given, 2) end
    return setmetatable({ kind = kind, plugin = name, opts = opts, given = given, where = where(2) }, SPEC)
  end
end

-- A plugin that is both a source and a sink (cs.kafka): the spec takes the
-- role cs.pipeline gives it (source = ..., sink = ...). Unknown options
-- fail at once; the rest is checked for each role now and reported when
-- the spec is used in that role (at the constructor's line).
local function make_dual(name, src_defs, sink_defs)
  local union, seen = {}, {}
  for _, defs in ipairs { src_defs, sink_defs } do
    for _, d in ipairs(defs) do
      if not seen[d.name] then
        seen[d.name] = true
        union[#union + 1] = { name = d.name, type = "value", optional = true, help = d.help }
      end
    end
  end
  return function(args)
    local ok, err = schema.validate("cs." .. name, union, args)
    if not ok then error(err, 2) end
    local w, roles = where(2), {}
    for kind, defs in pairs { source = src_defs, sink = sink_defs } do
      local opts, given = schema.validate("cs." .. name .. " (as a " .. kind .. ")", defs, args)
      roles[kind] = opts and { kind = kind, plugin = name, opts = opts, given = given, where = w } or { err = given }
    end
    return setmetatable({ kind = "source or sink", plugin = name, roles = roles, where = w }, SPEC)
  end
end

-- The spec in the role `kind`, for a spec made by make_dual.
local function resolve(spec, kind)
  if not (is_spec(spec) and spec.roles) then return spec end
  local r = spec.roles[kind]
  if r.err then error(spec.where .. ": " .. r.err, 0) end
  return setmetatable(r, SPEC)
end

for name, s in pairs(schemas.sources) do cs[name] = make_constructor("source", name, s.options) end
for name, s in pairs(schemas.sinks) do
  cs[name] = schemas.sources[name] and make_dual(name, schemas.sources[name].options, s.options) or
    make_constructor("sink", name, s.options)
end

-- Built-in aggregate names, in row order.
local BUILTIN = {}
for i, n in ipairs(core.aggregates) do BUILTIN[n] = i end

--- cs.aggregate { name = "...", init = fn() -> state, add = fn(state, trade) -> state?,
---                result = fn(state) -> value }
-- A user-defined aggregate, computed per window in Lua. `add` may update the
-- state in place (return nothing) or return a new state.
local AGG_DEFS = {
  { name = "name", type = "string", help = "the member name in the row" },
  { name = "init", type = "value", help = "function() returning the initial state" },
  { name = "add", type = "value", help = "function(state, trade) returning the new state (or nil to keep it)" },
  { name = "result", type = "value", help = "function(state) returning a JSON-encodable value" },
}
function cs.aggregate(args)
  local opts, err = schema.validate("cs.aggregate", AGG_DEFS, args)
  if not opts then error(err, 2) end
  for _, f in ipairs { "init", "add", "result" } do
    if type(opts[f]) ~= "function" then
      error("cs.aggregate: option '" .. f .. "' must be a function, got " .. type(opts[f]), 2)
    end
  end
  if BUILTIN[opts.name] then
    error("cs.aggregate: name '" .. opts.name .. "' is a built-in aggregate", 2)
  end
  if not opts.name:match("^[%a_][%w_]*$") then
    error("cs.aggregate: name '" .. opts.name .. "' must be an identifier (letters, digits, _)", 2)
  end
  return setmetatable({ kind = "aggregate", opts = opts, where = where(2) }, SPEC)
end

--- cs.tumbling { size = "30s", lateness = "5s", by = "product_id", aggregates = {...} }
function cs.tumbling(args)
  local opts, given = schema.validate("cs.tumbling", schemas.tumbling.options, args)
  if not opts then error(given, 2) end
  local aggs = opts.aggregates
  local bits, custom, seen = {}, {}, {}
  if aggs == nil then
    for i = 1, #core.aggregates do bits[i] = true end
  else
    if type(aggs) ~= "table" then
      error("cs.tumbling: option 'aggregates' must be a list, got " .. type(aggs), 2)
    end
    for i, a in ipairs(aggs) do
      if a == "all" then
        for j = 1, #core.aggregates do bits[j] = true end
      elseif type(a) == "string" then
        if not BUILTIN[a] then
          local s = schema.suggest(a, core.aggregates)
          error("cs.tumbling: option 'aggregates': unknown aggregate '" .. a .. "'" ..
            (s and (" (did you mean '" .. s .. "'?)") or (" (built-ins: all, " .. table.concat(core.aggregates, ", ") .. ")")), 2)
        end
        bits[BUILTIN[a]] = true
      elseif is_spec(a, "aggregate") then
        if seen[a.opts.name] then
          error("cs.tumbling: option 'aggregates': two aggregates are named '" .. a.opts.name .. "'", 2)
        end
        seen[a.opts.name] = true
        custom[#custom + 1] = a.opts
      else
        error("cs.tumbling: option 'aggregates': item " .. i ..
          " must be a built-in name or cs.aggregate{...}, got " .. type(a), 2)
      end
    end
  end
  local list = {}
  for i, n in ipairs(core.aggregates) do
    if bits[i] then list[#list + 1] = n end
  end
  opts.aggregates = list
  return setmetatable({ kind = "window", plugin = "tumbling", opts = opts, given = given, custom = custom,
    where = where(2) }, SPEC)
end

local PIPELINE_DEFS = {
  { name = "name", type = "string", optional = true, help = "pipeline name, used in logs and the summary" },
  { name = "source", type = "value", help = "a source: cs.replay{...}" },
  { name = "window", type = "value", optional = true,
    help = "a window: cs.tumbling{...}; without one, trades go to the sinks as trade records" },
  { name = "sink", type = "value", help = "a sink, or a list of sinks: cs.jsonl{...}" },
  { name = "filter", type = "value", optional = true, help = "function(trade) -> keep? (Lua hook)" },
  { name = "map", type = "value", optional = true, help = "function(trade) -> trade or nil (Lua hook)" },
}

--- cs.pipeline { name, source, window, sink, filter, map }
function cs.pipeline(args)
  local p, err = schema.validate("cs.pipeline", PIPELINE_DEFS, args)
  if not p then error(err, 2) end
  p.source = resolve(p.source, "source")
  if not is_spec(p.source, "source") then
    error("cs.pipeline: option 'source' must be a source such as cs.replay{...}, got " ..
      (is_spec(p.source) and p.source.kind or type(p.source)), 2)
  end
  if p.window ~= nil and not is_spec(p.window, "window") then
    error("cs.pipeline: option 'window' must be a window such as cs.tumbling{...}, got " ..
      (is_spec(p.window) and p.window.kind or type(p.window)), 2)
  end
  local sinks = p.sink
  if is_spec(sinks) then sinks = { sinks } end
  if type(sinks) ~= "table" or #sinks == 0 then
    error("cs.pipeline: option 'sink' must be a sink such as cs.jsonl{...} or a list of sinks", 2)
  end
  local resolved = {}
  for i, s in ipairs(sinks) do resolved[i] = resolve(s, "sink") end
  sinks = resolved
  for i, s in ipairs(sinks) do
    if not is_spec(s, "sink") then
      error("cs.pipeline: option 'sink': item " .. i .. " must be a sink such as cs.jsonl{...}, got " ..
        (is_spec(s) and s.kind or type(s)), 2)
    end
  end
  for _, f in ipairs { "filter", "map" } do
    if p[f] ~= nil and type(p[f]) ~= "function" then
      error("cs.pipeline: option '" .. f .. "' must be a function, got " .. type(p[f]), 2)
    end
  end
  -- A sink forwarding exchange frames as received (cs.kafka value = "raw")
  -- needs trades straight from a source of frames.
  for _, s in ipairs(sinks) do
    if s.opts.value == "raw" then
      local no
      if p.window ~= nil then
        no = "a pipeline with a window (the sink would get window rows)"
      elseif p.filter ~= nil or p.map ~= nil then
        no = "Lua filter/map hooks (a forwarded frame cannot show what they dropped or changed)"
      elseif not schemas.sources[p.source.plugin].frames then
        no = "cs." .. p.source.plugin .. " as the source: its messages are not exchange frames as received"
      end
      if no then
        error(s.where .. ": cs." .. s.plugin .. ": option 'value' = \"raw\" forwards exchange frames as received, " ..
          "which cannot work with " .. no .. " (use value = \"record\")", 0)
      end
    end
  end
  local name = p.name or ("pipeline" .. (#cs._pipelines + 1))
  if not name:match("^[%w_.%-]+$") then
    error("cs.pipeline: option 'name' may hold only letters, digits, '_', '-' and '.', got '" .. name .. "'", 2)
  end
  for _, q in ipairs(cs._pipelines) do
    if q.name == name then error("cs.pipeline: a pipeline named '" .. name .. "' is already declared (at " .. q.where .. ")", 2) end
  end
  local spec = {
    name = name, source = p.source, window = p.window, sinks = sinks,
    filter = p.filter, map = p.map, where = where(2),
  }
  cs._pipelines[#cs._pipelines + 1] = spec
  return spec
end

--- cs.metrics { port = 9100, host = "127.0.0.1", ack_timeout = "30s" }
-- Serves Prometheus metrics (/metrics) and a health check (/healthz) from
-- cstream's own loop while the script's pipelines run
-- (docs/operations.md). At most once per script; `--metrics-port` and
-- `--metrics-host` on the command line override it.
function cs.metrics(args)
  local opts, given = schema.validate("cs.metrics", schemas.metrics.options, args)
  if not opts then error(given, 2) end
  if cs._metrics then error("cs.metrics: already declared (at " .. cs._metrics.where .. ")", 2) end
  if opts.port < 0 or opts.port > 65535 then
    error("cs.metrics: option 'port' must be a TCP port (0-65535; 0: any free port), got " .. opts.port, 2)
  end
  cs._metrics = setmetatable({ kind = "metrics", plugin = "metrics", opts = opts, given = given, where = where(2) },
    SPEC)
  return cs._metrics
end

--- cs.arg(name, default): a script argument (cstream run script.lua name=value).
function cs.arg(name, default)
  local v = cs.args[name]
  if v == nil then return default end
  return v
end

--- cs.duration("30s") -> microseconds, or nil, message.
function cs.duration(s)
  local us = core.parse_duration(tostring(s))
  if not us then return nil, "'" .. tostring(s) .. "' is not a duration" end
  return us
end

cs.schemas = schemas
return cs
