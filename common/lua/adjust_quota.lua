-- adjust_quota.lua: apply one control-plane quota adjustment (purchase, refund, dispute,
-- manual credit) to a live balance, at most once (control_plane/payments/quota_sync.py).
--
-- KEYS[1] quota:{sS}:<user_id>  live quota units (string)
-- KEYS[2] qadj:{sS}:<user_id>   hash: "_seq" -> the quotas.adjust_seq the balance was loaded
--                               from Postgres at; <adjustment id> -> units it moved by
--
-- ARGV[1] adjustment id (quota_adjustments.id)
-- ARGV[2] its seq (quotas.adjust_seq right after it was written)
-- ARGV[3] planned delta: +units for a credit, -units for a take-back (never below zero)
--
-- Returns {status, applied}:
--   "APPLIED"  moved by `applied` now (a take-back finds at most what is left)
--   "DONE"     applied before; `applied` is what it moved by then
--   "INCLUDED" the balance was loaded from Postgres after the adjustment (seq <= "_seq"), so it
--              already holds it; `applied` = planned
--   "ABSENT"   no live balance: nothing done (the caller loads one from Postgres and retries)

local done = redis.call("HGET", KEYS[2], ARGV[1])
if done then return {"DONE", tonumber(done)} end
local balance = redis.call("GET", KEYS[1])
if not balance then return {"ABSENT", 0} end

local planned = tonumber(ARGV[3])
local loaded_at = tonumber(redis.call("HGET", KEYS[2], "_seq") or "0")
if tonumber(ARGV[2]) <= loaded_at then
  redis.call("HSET", KEYS[2], ARGV[1], planned)
  return {"INCLUDED", planned}
end

local applied = planned
if planned < 0 then
  local left = math.max(tonumber(balance), 0)
  applied = -math.min(-planned, left)
end
if applied ~= 0 then redis.call("INCRBY", KEYS[1], applied) end
redis.call("HSET", KEYS[2], ARGV[1], applied)
return {"APPLIED", applied}
