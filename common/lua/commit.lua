-- commit.lua: settle one admitted call: keep or give back what admit.lua reserved, and
-- append its usage event, atomically. Idempotent: a second commit of the same call (or a
-- commit after the reaper gave the reservation back) changes nothing.
--
-- KEYS[1] resv:{sS}              reservations (hash: call_id -> reservation)
-- KEYS[2] resvq:{sS}             reservation deadlines (zset)
-- KEYS[3] quota:{sS}:<user_id>   live quota units
-- KEYS[4] trial:{sS}:<user_id>   trial calls used per agent
-- KEYS[5] usage:{sS}             usage event stream
-- KEYS[6] kspend:{sS}            capped keys' spend (a refund comes off it too)
--
-- ARGV[1] call_id        ARGV[2] billable ("1" keeps the charge, "0" gives it back)
-- ARGV[3] status (success|error|timeout|blocked|cancelled)
-- ARGV[4] input tokens   ARGV[5] output tokens   ARGV[6] latency ms
-- ARGV[7] error code ("" when none)   ARGV[8] client request id
-- ARGV[9] cached input tokens (of ARGV[4], those read from the provider's prompt cache)
--
-- Returns 1 when this call settled the reservation, 0 when it was already settled.
-- Uses the prelude (prelude.lua): now_ms, decode_reservation, give_back, usage_event_args.

local stored = redis.call("HGET", KEYS[1], ARGV[1])
if not stored then return 0 end
local r = decode_reservation(stored)
local billable = ARGV[2] == "1"

local charged_units = 0
if billable and r.charge == "quota" then charged_units = r.units end
local event = usage_event_args({
  call_id = ARGV[1], request_id = ARGV[8], user_id = r.user_id, key_id = r.key_id,
  agent_id = r.agent_id, agent_version = r.agent_version, charge = r.charge,
  units = charged_units, billable = ARGV[2], status = ARGV[3], input_tokens = ARGV[4],
  output_tokens = ARGV[5], latency_ms = ARGV[6], error_code = ARGV[7], ts_ms = now_ms(),
  cached_input_tokens = ARGV[9],
})

if not billable then give_back(r, KEYS[3], KEYS[4], KEYS[6]) end
redis.call("XADD", KEYS[5], "*", unpack(event))
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
return 1
