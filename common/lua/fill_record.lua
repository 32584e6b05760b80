-- fill_record.lua: write a cache record loaded from Postgres, unless one is already there.
--
-- The control plane writes records authoritatively (publish, revoke, suspend); a gateway
-- filling a cold record may hold data read just before such a write, so it must never
-- overwrite: the record present wins.
--
-- KEYS[1] the record (hash)
-- ARGV[1] TTL in seconds
-- ARGV[2], ARGV[3], ... field, value pairs
--
-- Returns 1 when written, 0 when a record was already present.

if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
local pairs_ = {}
for i = 2, #ARGV do pairs_[#pairs_ + 1] = ARGV[i] end
redis.call("HSET", KEYS[1], unpack(pairs_))
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[1]))
return 1
