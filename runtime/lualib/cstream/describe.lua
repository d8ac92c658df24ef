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
  for _, d in ipairs(defs) do
    local v = spec.opts[d.name]
    if v ~= nil then
      out[#out + 1] = string.format("      %-12s = %s%s", d.name, fmt(v), spec.given[d.name] and "" or "  (default)")
    end
  end
end

return function()
  local out = {}
  for _, p in ipairs(cs._pipelines) do
    out[#out + 1] = string.format("pipeline %s  (%s)", p.name, p.where)
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
  return table.concat(out, "\n")
end
