-- Knowledge bases, part two: what ingestion and retrieval need on top of 0003.
--
-- - agents.knowledge_version: bumped by every change to what retrieval can see for the agent
--   (a file became ready, a ready file was deleted, chunks were re-embedded); the gateway
--   gets it with the agent record and keys its retrieval cache on it.
-- - knowledge_file_contents: the uploaded bytes (Postgres is the object store: uploads are
--   small, and one transaction then covers the row and its bytes).
-- - knowledge_files.chunk_size / chunk_overlap: fixed at upload, so a file processed twice
--   (after a crash) is split exactly the same way; attempts: a file that keeps killing the
--   worker is failed instead of retried forever.
-- - knowledge_chunk_staging: chunks of a file still being processed, committed batch by
--   batch so a restarted worker resumes where the dead one stopped; retrieval never reads
--   it. The file's last transaction moves them into knowledge_chunks and marks it ready,
--   so a file is visible completely or not at all.
-- - knowledge_chunks.embedding_model / embedding_dimension: which model made the vector
--   (vectors of two models are never compared); content_tsv + GIN: the full-text half of
--   hybrid retrieval.

ALTER TABLE agents
    ADD COLUMN knowledge_version BIGINT NOT NULL DEFAULT 0
        CONSTRAINT agents_knowledge_version_nonnegative CHECK (knowledge_version >= 0);

ALTER TABLE knowledge_files
    ADD COLUMN chunk_size INT NOT NULL DEFAULT 1000
        CONSTRAINT knowledge_files_chunk_size_range CHECK (chunk_size BETWEEN 100 AND 8000),
    ADD COLUMN chunk_overlap INT NOT NULL DEFAULT 200
        CONSTRAINT knowledge_files_chunk_overlap_range
        CHECK (chunk_overlap >= 0 AND chunk_overlap < chunk_size),
    ADD COLUMN attempts INT NOT NULL DEFAULT 0
        CONSTRAINT knowledge_files_attempts_nonnegative CHECK (attempts >= 0);

-- One upload of the same bytes per agent: a retried upload finds the first one.
CREATE UNIQUE INDEX knowledge_files_agent_content_key
    ON knowledge_files (agent_id, content_sha256);

CREATE TABLE knowledge_file_contents (
    file_id  UUID PRIMARY KEY REFERENCES knowledge_files (id) ON DELETE CASCADE,
    content  BYTEA NOT NULL
);

ALTER TABLE knowledge_chunks
    ADD COLUMN embedding_model TEXT
        CONSTRAINT knowledge_chunks_embedding_model_length
        CHECK (char_length(embedding_model) BETWEEN 1 AND 200),
    ADD COLUMN embedding_dimension INT
        CONSTRAINT knowledge_chunks_embedding_dimension_positive CHECK (embedding_dimension > 0),
    ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    -- A model is named only with a vector and its width. (A vector without a model, from
    -- before this migration, counts as "some other model" and is re-embedded.)
    ADD CONSTRAINT knowledge_chunks_embedding_provenance CHECK (
        (embedding_model IS NULL) = (embedding_dimension IS NULL)
        AND (embedding_model IS NULL OR embedding IS NOT NULL)
    );
CREATE INDEX knowledge_chunks_content_tsv_idx ON knowledge_chunks USING gin (content_tsv);

-- The staging table's vector column has the chunks' type: vector(384) with pgvector, real[]
-- without (see 0003).
DO $$
DECLARE
    embedding_type text;
BEGIN
    SELECT format_type(atttypid, atttypmod) INTO embedding_type
    FROM pg_attribute
    WHERE attrelid = 'knowledge_chunks'::regclass AND attname = 'embedding';

    EXECUTE format(
        $sql$CREATE TABLE knowledge_chunk_staging (
            file_id              UUID NOT NULL REFERENCES knowledge_files (id) ON DELETE CASCADE,
            chunk_index          INT NOT NULL CHECK (chunk_index >= 0),
            content              TEXT NOT NULL CHECK (content <> ''),
            embedding            %s NOT NULL,
            embedding_model      TEXT NOT NULL CHECK (char_length(embedding_model) BETWEEN 1 AND 200),
            embedding_dimension  INT NOT NULL CHECK (embedding_dimension > 0),
            PRIMARY KEY (file_id, chunk_index)
        )$sql$,
        embedding_type
    );
END
$$;
