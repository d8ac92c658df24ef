-- cstream.schema: validates the options a script passes to cs.<plugin>{...}
-- against the plugin's option table, which lives in C (cs_optdef rows) and
-- reaches Lua through cstream.core.schemas(). Returns nil, message on a
-- mistake; the caller raises it at the script's line.
local core = require "cstream.core"

local M = {}

-- Levenshtein distance, for "did you mean" suggestions.
local function distance(a, b)
  local la, lb = #a, #b
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

-- The closest name in `names` to `word`, if it is close enough to be a typo.
function M.suggest(word, names)
  local best, bestd
  for _, n in ipairs(names) do
    local d = distance(word:lower(), n:lower())
    if not bestd or d < bestd then best, bestd = n, d end
  end
  if best and bestd <= math.max(2, math.floor(#word / 3)) then return best end
  return nil
end

local function option_names(defs)
  local names = {}
  for _, d in ipairs(defs) do names[#names + 1] = d.name end
  return names
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" then return false end
    n = n + 1
  end
  return n == #t
end

-- Checks one value against its definition; returns the normalised value
-- or nil, reason.
local function check_value(d, v)
  local t = d.type
  if t == "string" then
    if type(v) ~= "string" then return nil, "must be a string, got " .. type(v) end
    return v
  elseif t == "number" or t == "integer" then
    local n = v
    if type(v) == "string" then n = tonumber(v) end
    if type(n) ~= "number" or n ~= n or n == math.huge or n == -math.huge then
      return nil, "must be a number, got " .. (type(v) == "string" and ("'" .. v .. "'") or type(v))
    end
    if t == "integer" and n ~= math.floor(n) then return nil, "must be a whole number, got " .. tostring(n) end
    return n
  elseif t == "boolean" then
    if v == "true" then return true elseif v == "false" then return false end
    if type(v) ~= "boolean" then return nil, "must be true or false, got " .. type(v) end
    return v
  elseif t == "duration" or t == "seconds" then
    if type(v) ~= "string" and type(v) ~= "number" then
      return nil, "must be a duration (\"500ms\", \"30s\", \"1m\", \"1h\" or seconds), got " .. type(v)
    end
    local us = core.parse_duration(tostring(v))
    if type(v) == "number" and v < 0 then us = nil end
    if not us then
      return nil, "'" .. tostring(v) .. "' is not a duration (\"500ms\", \"30s\", \"1m\", \"1h\" or seconds)"
    end
    if t == "seconds" and (us <= 0 or us % 1000000 ~= 0) then
      return nil, "'" .. tostring(v) .. "' is not a whole number of seconds > 0"
    end
    return v
  elseif t == "enum" then
    if type(v) ~= "string" then return nil, "must be one of " .. d.choices .. ", got " .. type(v) end
    for c in d.choices:gmatch("[^|]+") do
      if c == v then return v end
    end
    local choices = {}
    for c in d.choices:gmatch("[^|]+") do choices[#choices + 1] = c end
    local s = M.suggest(v, choices)
    return nil, "'" .. v .. "' is not one of " .. d.choices .. (s and (" (did you mean '" .. s .. "'?)") or "")
  elseif t == "strings" then
    if type(v) == "string" then return { v } end
    if not is_list(v) then return nil, "must be a list of strings" end
    for i, s in ipairs(v) do
      if type(s) ~= "string" then return nil, "item " .. i .. " must be a string, got " .. type(s) end
    end
    return v
  end
  return v -- "value": checked by the caller
end

-- Validates `args` (the table a script passed) for the call named `what`
-- ("cs.replay"). Returns a table of values with defaults filled in and a
-- set of the names the script gave itself, or nil, message.
function M.validate(what, defs, args)
  if type(args) ~= "table" then
    return nil, what .. " expects a table of options, e.g. " .. what .. " { ... }, got " .. type(args)
  end
  local known = {}
  for _, d in ipairs(defs) do known[d.name] = d end
  -- Unknown keys first, in a stable order, so the message is predictable.
  local unknown = {}
  for k in pairs(args) do
    if type(k) ~= "string" then
      return nil, what .. ": options are named (key = value); got a value at position " .. tostring(k)
    end
    if not known[k] then unknown[#unknown + 1] = k end
  end
  table.sort(unknown)
  if #unknown > 0 then
    local k = unknown[1]
    local s = M.suggest(k, option_names(defs))
    local valid = table.concat(option_names(defs), ", ")
    return nil, what .. ": unknown option '" .. k .. "'" ..
      (s and (" (did you mean '" .. s .. "'?)") or (" (valid options: " .. valid .. ")"))
  end
  local out, given = {}, {}
  for _, d in ipairs(defs) do
    local v = args[d.name]
    if v == nil then
      if d.default == nil and not d.optional then
        return nil, what .. ": option '" .. d.name .. "' is required (" .. d.help .. ")"
      end
      if d.default ~= nil then out[d.name] = check_value(d, d.default) end
    else
      given[d.name] = true
      local nv, why = check_value(d, v)
      if nv == nil then return nil, what .. ": option '" .. d.name .. "' " .. why end
      out[d.name] = nv
    end
  end
  return out, given
end

M.check_value = check_value
return M
