-- reap.lua: give back reservations whose deadline passed (the gateway that made them died
-- or hung), appending a non-billable "cancelled" usage event for each (with the call's id and
-- the client's request id from the reservation). Run by the worker.
--
-- KEYS[1] resv:{sS}    reservations (hash: call_id -> reservation)
-- KEYS[2] resvq:{sS}   reservation deadlines (zset)
-- KEYS[3] usage:{sS}   usage event stream
-- KEYS[4] kspend:{sS}  capped keys' spend (a given-back charge comes off it)
--
-- ARGV[1] the shard's quota key prefix, e.g. "quota:{s17}:", and ARGV[2] its trial key
--         prefix, e.g. "trial:{s17}:" (common/keyspace.py): a reservation's user id completes
--         them, and the shard's hash tag keeps them in the cluster slot of KEYS[1..3]
-- ARGV[3] at most this many reservations per call
--
-- Returns the number of reservations given back.
-- Uses the prelude (prelude.lua): now_ms, decode_reservation, give_back, usage_event_args.

local now = now_ms()
local due = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now, "LIMIT", 0, tonumber(ARGV[3]))
local reaped = 0
for _, call_id in ipairs(due) do
  local stored = redis.call("HGET", KEYS[1], call_id)
  if stored then
    local r = decode_reservation(stored)
    local event = usage_event_args({
      call_id = call_id, request_id = r.request_id, user_id = r.user_id, key_id = r.key_id,
      agent_id = r.agent_id, agent_version = r.agent_version, charge = r.charge, units = 0,
      billable = "0", status = "cancelled", input_tokens = 0, output_tokens = 0,
      latency_ms = now - r.admitted_ms, error_code = "reaped", ts_ms = now,
      cached_input_tokens = 0,
    })
    give_back(r, ARGV[1] .. r.user_id, ARGV[2] .. r.user_id, KEYS[4])
    redis.call("XADD", KEYS[3], "*", unpack(event))
    redis.call("HDEL", KEYS[1], call_id)
    reaped = reaped + 1
  end
  redis.call("ZREM", KEYS[2], call_id)
end
return reaped
