-- commit.lua: settle one admitted call: keep or give back what admit.lua reserved, and
-- append its usage event, atomically. Idempotent: a second commit of the same call (or a
-- commit after the reaper gave the reservation back) changes nothing.
--
-- KEYS[1] resv:{sS}              reservations (hash: call_id -> reservation)
-- KEYS[2] resvq:{sS}             reservation deadlines (zset)
-- KEYS[3] quota:{sS}:<user_id>   live quota units
-- KEYS[4] trial:{sS}:<user_id>   trial calls used per agent
-- KEYS[5] usage:{sS}             usage event stream
--
-- ARGV[1] call_id        ARGV[2] billable ("1" keeps the charge, "0" gives it back)
-- ARGV[3] status (success|error|timeout|blocked|cancelled)
-- ARGV[4] input tokens   ARGV[5] output tokens   ARGV[6] latency ms
-- ARGV[7] error code ("" when none)   ARGV[8] client request id
--
-- Returns 1 when this call settled the reservation, 0 when it was already settled.

local reservation = redis.call("HGET", KEYS[1], ARGV[1])
if not reservation then return 0 end

local fields = {}
for part in string.gmatch(reservation, "([^|]*)|?") do
  if #fields < 7 then table.insert(fields, part) end
end
local user_id, agent_id, version, charge, units, key_id = fields[1], fields[2], fields[3],
  fields[4], tonumber(fields[5]), fields[6]

local charged_units = 0
if ARGV[2] == "1" then
  if charge == "quota" then charged_units = units end
else
  if charge == "quota" then
    redis.call("INCRBY", KEYS[3], units)
  else
    redis.call("HINCRBY", KEYS[4], agent_id, -1)
  end
end

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("XADD", KEYS[5], "*",
  "call_id", ARGV[1], "request_id", ARGV[8], "user_id", user_id, "key_id", key_id,
  "agent_id", agent_id, "agent_version", version, "charge", charge,
  "units", charged_units, "billable", ARGV[2], "status", ARGV[3],
  "input_tokens", ARGV[4], "output_tokens", ARGV[5], "latency_ms", ARGV[6],
  "error_code", ARGV[7], "ts_ms", now)
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
return 1
