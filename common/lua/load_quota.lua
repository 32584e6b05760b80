-- load_quota.lua: set a live quota balance read from Postgres, unless one is already there.
--
-- Used by the gateway's cold load and by the control plane before adjusting a balance Redis
-- does not hold. The balance and adjust_seq come from one Postgres snapshot; remembering the
-- seq lets adjust_quota.lua tell which adjustments this balance already includes, whichever
-- of several racing loads (one possibly from an older snapshot) wins.
--
-- KEYS[1] quota:{sS}:<user_id>  KEYS[2] qadj:{sS}:<user_id>
-- ARGV[1] balance (units, >= 0)  ARGV[2] quotas.adjust_seq of the same snapshot
--
-- Returns 1 when written, 0 when a balance was already present.

if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("SET", KEYS[1], ARGV[1])
redis.call("HSET", KEYS[2], "_seq", ARGV[2])
return 1
