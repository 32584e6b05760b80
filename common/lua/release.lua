-- release.lua: take back an admission that must not stand, as if it had never been made. On a
-- Redis Cluster: one decided on agent fields that the gateway's read of the agent record,
-- made at the same time, contradicts (gateway/sharded_admission.py); the call is then decided
-- again on the fields read, under the same call id. So: the reservation's quota units (and a
-- capped key's spend) or its trial call go back, its entries leave both rate windows, and no
-- usage event is written (the call did not happen).
--
-- KEYS[1] resv:{sS}              reservations (hash: call_id -> reservation)
-- KEYS[2] resvq:{sS}             reservation deadlines (zset)
-- KEYS[3] quota:{sS}:<user_id>   live quota units
-- KEYS[4] trial:{sS}:<user_id>   trial calls used per agent
-- KEYS[5] kspend:{sS}            capped keys' spend
-- KEYS[6] rl:{sS}:<user_id>      the account's rate window
-- KEYS[7] krl:{sS}:<key_hash>    the key's own rate window
--
-- ARGV[1] call_id
--
-- Returns 1 when it released the reservation, 0 when there was none (settled or reaped).
-- Uses the prelude (prelude.lua): decode_reservation, give_back.

local stored = redis.call("HGET", KEYS[1], ARGV[1])
if not stored then return 0 end
give_back(decode_reservation(stored), KEYS[3], KEYS[4], KEYS[5])
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[6], ARGV[1])
redis.call("ZREM", KEYS[7], ARGV[1])
return 1
