-- cstream.describe: prints the declared topology (`cstream check`):
-- each pipeline's source -> window -> sinks with every option, defaults
-- included, marked where the script did not set them.
local cs = require "cstream"

local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then
    local parts = {}
    for _, x in ipairs(v) do parts[#parts + 1] = fmt(x) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end

local function options(out, defs, spec)
  local w = 12
  for _, d in ipairs(defs) do w = math.max(w, #d.name) end
  for _, d in ipairs(defs) do
    local v = spec.opts[d.name]
    if v ~= nil then
      out[#out + 1] = string.format("      %-" .. w .. "s = %s%s", d.name, fmt(v),
        spec.given[d.name] and "" or "  (default)")
    elseif d.type ~= "value" then
      out[#out + 1] = string.format("      %-" .. w .. "s   (not set: %s)", d.name, d.help)
    end
  end
end

-- "cs.replay -> cs.tumbling 30s (lateness 5s) -> cs.jsonl, cs.discard"
local function flow(p)
  local parts = { "cs." .. p.source.plugin }
  if p.filter or p.map then
    parts[#parts + 1] = "Lua " .. (p.filter and p.map and "filter+map" or p.filter and "filter" or "map")
  end
  if p.window then
    local o = p.window.opts
    parts[#parts + 1] = string.format("cs.tumbling %s (lateness %s)", fmt(o.size), fmt(o.lateness))
  end
  local sinks = {}
  for _, s in ipairs(p.sinks) do sinks[#sinks + 1] = "cs." .. s.plugin end
  parts[#parts + 1] = table.concat(sinks, ", ")
  return (table.concat(parts, " -> "):gsub('"', ""))
end

return function()
  local out = {}
  for _, p in ipairs(cs._pipelines) do
    out[#out + 1] = string.format("pipeline %s  (%s)", p.name, p.where)
    out[#out + 1] = "  " .. flow(p)
    local src = p.source
    out[#out + 1] = string.format("  source cs.%s  (%s)", src.plugin, src.where)
    options(out, cs.schemas.sources[src.plugin].options, src)
    if p.filter then out[#out + 1] = "  filter  Lua function" end
    if p.map then out[#out + 1] = "  map     Lua function" end
    local w = p.window
    if w then
      out[#out + 1] = string.format("  window cs.tumbling  (%s)", w.where)
      options(out, cs.schemas.tumbling.options, w)
      for _, a in ipairs(w.custom) do out[#out + 1] = "      aggregate " .. a.name .. " (Lua)" end
    else
      out[#out + 1] = "  no window: trades go to the sinks as trade records (v1)"
    end
    for _, s in ipairs(p.sinks) do
      out[#out + 1] = string.format("  sink cs.%s  (%s)", s.plugin, s.where)
      options(out, cs.schemas.sinks[s.plugin].options, s)
    end
  end
  local m = cs._metrics
  if m then
    out[#out + 1] = string.format("metrics  (%s)", m.where)
    options(out, cs.schemas.metrics.options, m)
  else
    out[#out + 1] = "metrics: not served (add cs.metrics { port = 9100 } or run with --metrics-port)"
  end
  return table.concat(out, "\n")
end
