-- Knowledge retrieval, part six: the re-embedding job finds chunks of another model by index.
--
-- The worker asks every KNOWLEDGE_REEMBED_INTERVAL_S (60 s) for chunks whose vector was made
-- by another model than the configured one (control_plane/knowledge/reembed.py). Asked as
-- "embedding_model IS DISTINCT FROM $1" that read every chunk of every agent each time, to find
-- nothing nearly always: at 100,000 chunks (219 MB) a 60-355 ms sequential scan a minute, and
-- 77-159 ms per batch of 64 while a model change is re-embedded. This index answers it as the
-- two ranges around the current model (no model is '', before any), read in (model, agent, id)
-- order only as far as one batch needs: 0.03-0.04 ms and 0.11-0.17 ms (EXPLAIN ANALYZE, two
-- runs at load 9-16; 10 MB of index).
-- An old model's chunks come agent by agent, so a batch bumps few agents' knowledge versions.
--
-- Over coalesce(embedding_model, ''), not the column: retrieval's "agent_id = $1 AND
-- embedding_model = $3" must not match it. A plain (embedding_model, agent_id, id) index was
-- the planner's choice for a small agent's exact vector scan, in place of the agent index's
-- bitmap scan: 1,015 buffers read instead of 336, for no less CPU.
--
-- Built in the migration's transaction (chunk writes wait for it: seconds at that size).
CREATE INDEX knowledge_chunks_model_idx
    ON knowledge_chunks ((coalesce(embedding_model, '')), agent_id, id);
