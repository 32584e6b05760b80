-- prelude.lua: what the scripts share, prepended to each of them when it is loaded
-- (common/redis_store.py, after a generated `local USAGE_EVENT_FIELDS = {...}` line listing
-- `UsageEvent`'s fields from common/usage_events.py). Not a script of its own.
--
-- now_ms()                      Redis server TIME in ms, never the caller's clock
-- encode_reservation(r)         what admit.lua stores per call in resv:{sS} ...
-- decode_reservation(text)      ... and commit.lua / reap.lua read back
-- give_back(r, quota, trials, spend)  return a reservation's quota units or trial call
-- usage_event_args(event)       a usage event as XADD field/value arguments

local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A reservation is these fields joined by "|" (ids and words: none contains a "|"; the
-- client's request id is one of [A-Za-z0-9._:-], common/asgi.py). request_id came last and
-- may be missing from a reservation written before it: it reads back as "".
local RESERVATION_FIELDS = {"user_id", "agent_id", "agent_version", "charge", "units", "key_id",
                            "admitted_ms", "request_id", "spend"}

local function encode_reservation(r)
  local parts = {}
  for i, name in ipairs(RESERVATION_FIELDS) do parts[i] = r[name] end
  return table.concat(parts, "|")
end

local function decode_reservation(text)
  local r, i = {}, 0
  for part in string.gmatch(text, "([^|]*)|?") do
    i = i + 1
    if i > #RESERVATION_FIELDS then break end
    r[RESERVATION_FIELDS[i]] = part
  end
  r.units = tonumber(r.units)
  r.admitted_ms = tonumber(r.admitted_ms)
  r.request_id = r.request_id or ""
  r.spend = r.spend or ""  -- the kspend:{sS} field a capped key's units were counted in
  return r
end

-- charge "quota": the units go back to the balance (and off a capped key's spend);
-- "trial": the trial call is not used up.
local function give_back(r, quota_key, trials_key, spend_key)
  if r.charge == "quota" then
    redis.call("INCRBY", quota_key, r.units)
    -- A bucket whose field expired has ended: nothing to give back to it (and no negative
    -- field without an expiry left behind).
    if r.spend ~= "" and redis.call("HEXISTS", spend_key, r.spend) == 1 then
      redis.call("HINCRBY", spend_key, r.spend, -r.units)
    end
  else
    redis.call("HINCRBY", trials_key, r.agent_id, -1)
  end
end

-- Every field of USAGE_EVENT_FIELDS, in that order; a missing one fails the script before it
-- writes anything (callers build the arguments first).
local function usage_event_args(event)
  local args = {}
  for _, name in ipairs(USAGE_EVENT_FIELDS) do
    local value = event[name]
    if value == nil then error("usage event without " .. name) end
    args[#args + 1] = name
    args[#args + 1] = value
  end
  return args
end
