-- reap.lua: give back reservations whose deadline passed (the gateway that made them died
-- or hung), appending a non-billable "cancelled" usage event for each. Run by the worker.
--
-- KEYS[1] resv:{sS}    reservations (hash: call_id -> reservation)
-- KEYS[2] resvq:{sS}   reservation deadlines (zset)
-- KEYS[3] usage:{sS}   usage event stream
--
-- ARGV[1] the shard's hash tag, e.g. "{s17}": quota and trial keys are built from it, so
--         they live in the same cluster slot as KEYS[1..3]
-- ARGV[2] at most this many reservations per call
--
-- Returns the number of reservations given back.

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now, "LIMIT", 0, tonumber(ARGV[2]))
local reaped = 0
for _, call_id in ipairs(due) do
  local reservation = redis.call("HGET", KEYS[1], call_id)
  if reservation then
    local fields = {}
    for part in string.gmatch(reservation, "([^|]*)|?") do
      if #fields < 7 then table.insert(fields, part) end
    end
    local user_id, agent_id, version, charge, units, key_id = fields[1], fields[2], fields[3],
      fields[4], tonumber(fields[5]), fields[6]
    if charge == "quota" then
      redis.call("INCRBY", "quota:" .. ARGV[1] .. ":" .. user_id, units)
    else
      redis.call("HINCRBY", "trial:" .. ARGV[1] .. ":" .. user_id, agent_id, -1)
    end
    redis.call("XADD", KEYS[3], "*",
      "call_id", call_id, "request_id", "", "user_id", user_id, "key_id", key_id,
      "agent_id", agent_id, "agent_version", version, "charge", charge,
      "units", 0, "billable", "0", "status", "cancelled",
      "input_tokens", 0, "output_tokens", 0, "latency_ms", now - tonumber(fields[7]),
      "error_code", "reaped", "ts_ms", now)
    redis.call("HDEL", KEYS[1], call_id)
    reaped = reaped + 1
  end
  redis.call("ZREM", KEYS[2], call_id)
end
return reaped
