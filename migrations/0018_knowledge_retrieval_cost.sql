-- Knowledge retrieval, part three: what keeps one retrieval cheap in a large knowledge base.
--
-- - knowledge_lexemes: for each agent, in how many of its chunks each lexeme occurs (kept by
--   statement triggers on knowledge_chunks). The full-text half of retrieval ORs the
--   question's lexemes; in a large knowledge base its common words match thousands of chunks,
--   each of which would be ranked, while they say little about which chunk answers (what
--   BM25's idf expresses). With these counts the query keeps the question's rarest lexemes,
--   as many as stay within a budget of matched chunks (common/knowledge/retrieval.py), so
--   the cost is bounded and exact terms (codes, names) are always kept.
-- - knowledge_chunks.embedding is stored inline (PLAIN): a 384-float vector is 1.5 KB, and
--   with a chunk's text and tsvector the row passes the 2 KB TOAST threshold, which moved the
--   vector out of line, so that an exact scan (a small knowledge base, where the planner
--   rightly skips the HNSW index) and the similarity of every fused hit fetched each vector
--   from the TOAST table. Text and tsvector are compressed or moved out of line instead.
--
-- Chunk texts are never edited (a file is re-processed by replacing its chunks), which is
-- what lets the counts follow inserts and deletes only; a trigger refuses an edit.

CREATE TABLE knowledge_lexemes (
    agent_id  UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    lexeme    TEXT NOT NULL,
    chunks    INT NOT NULL CONSTRAINT knowledge_lexemes_chunks_nonnegative CHECK (chunks >= 0),
    PRIMARY KEY (agent_id, lexeme)
);

-- Both functions first lock the agents concerned (in one order, per transaction), so two
-- files of one agent finishing at once, or a delete beside them, queue instead of deadlocking
-- on each other's lexeme rows.
CREATE FUNCTION knowledge_lexemes_lock(agent_ids UUID[]) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('knowledge_lexemes:' || id::text, 0))
    FROM (SELECT DISTINCT unnest(agent_ids) AS id ORDER BY 1) agents;
$$;

CREATE FUNCTION knowledge_lexemes_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_lexemes_lock(ARRAY(SELECT agent_id FROM added_chunks));
    INSERT INTO knowledge_lexemes AS known (agent_id, lexeme, chunks)
    SELECT c.agent_id, l.lexeme, count(*)
    FROM added_chunks c, unnest(tsvector_to_array(c.content_tsv)) AS l (lexeme)
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (agent_id, lexeme) DO UPDATE SET chunks = known.chunks + excluded.chunks;
    RETURN NULL;
END
$$;

CREATE FUNCTION knowledge_lexemes_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_lexemes_lock(ARRAY(SELECT agent_id FROM removed_chunks));
    UPDATE knowledge_lexemes known SET chunks = known.chunks - gone.chunks
    FROM (
        SELECT c.agent_id, l.lexeme, count(*) AS chunks
        FROM removed_chunks c, unnest(tsvector_to_array(c.content_tsv)) AS l (lexeme)
        GROUP BY 1, 2
    ) gone
    WHERE known.agent_id = gone.agent_id AND known.lexeme = gone.lexeme;
    DELETE FROM knowledge_lexemes
    WHERE chunks = 0 AND agent_id IN (SELECT DISTINCT agent_id FROM removed_chunks);
    RETURN NULL;
END
$$;

CREATE FUNCTION knowledge_chunks_content_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'knowledge chunk texts are not edited: replace the chunk'
        USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER knowledge_chunks_lexemes_added
    AFTER INSERT ON knowledge_chunks
    REFERENCING NEW TABLE AS added_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_lexemes_added();

CREATE TRIGGER knowledge_chunks_lexemes_removed
    AFTER DELETE ON knowledge_chunks
    REFERENCING OLD TABLE AS removed_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_lexemes_removed();

CREATE TRIGGER knowledge_chunks_content_fixed
    BEFORE UPDATE OF content, agent_id ON knowledge_chunks
    FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content
                       OR OLD.agent_id IS DISTINCT FROM NEW.agent_id)
    EXECUTE FUNCTION knowledge_chunks_content_fixed();

INSERT INTO knowledge_lexemes (agent_id, lexeme, chunks)
SELECT c.agent_id, l.lexeme, count(*)
FROM knowledge_chunks c, unnest(tsvector_to_array(c.content_tsv)) AS l (lexeme)
GROUP BY 1, 2;

-- Inline vectors, for rows written from now on. Rows already stored keep their out-of-line
-- vector until they are rewritten (a re-embedding does it): rewriting them here would update
-- every row of the HNSW index one by one, which takes far longer than this deserves.
ALTER TABLE knowledge_chunks ALTER COLUMN embedding SET STORAGE PLAIN;
ALTER TABLE knowledge_chunk_staging ALTER COLUMN embedding SET STORAGE PLAIN;
