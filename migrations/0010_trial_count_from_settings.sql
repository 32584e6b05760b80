-- Free trial calls per (developer, agent) pair come from one setting, FREE_TRIAL_CALLS
-- (common/settings.py, default 3), no longer also from this schema.
--
-- trial_usage.calls_used is the durable count of the trial calls a pair has made; admission
-- (admit.lua, with the setting as an argument) is what enforces the limit. The 0..3 CHECK of
-- 0001 made Postgres undercount (or refuse the batch) as soon as the setting was raised, and
-- a Redis rebuild from that undercount handed out extra trials. It keeps its name and now
-- only refuses a negative count.

ALTER TABLE trial_usage DROP CONSTRAINT trial_usage_calls_used_range;
ALTER TABLE trial_usage
    ADD CONSTRAINT trial_usage_calls_used_range CHECK (calls_used >= 0);

COMMENT ON COLUMN trial_usage.calls_used IS
    'Trial calls this developer made to this agent (uncapped; FREE_TRIAL_CALLS is enforced by admission).';

UPDATE feature_flags
SET description = 'Allow FREE_TRIAL_CALLS free trial calls (3 by default) per developer and agent.'
WHERE key = 'enable_trial_mode'
  AND description = 'Allow 3 free trial calls per developer and agent.';
