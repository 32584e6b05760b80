-- Agent knowledge bases: uploaded files, and the chunks retrieved into prompts (RAG).

CREATE TABLE knowledge_files (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- CASCADE: a knowledge base is part of its agent. The stored objects are removed by the
    -- application (object storage is outside the transaction).
    agent_id        UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    filename        TEXT NOT NULL
                    CONSTRAINT knowledge_files_filename_length
                    CHECK (char_length(filename) BETWEEN 1 AND 255),
    file_type       TEXT NOT NULL
                    CONSTRAINT knowledge_files_file_type_length
                    CHECK (char_length(file_type) BETWEEN 1 AND 100),
    file_size       BIGINT NOT NULL
                    CONSTRAINT knowledge_files_file_size_nonnegative CHECK (file_size >= 0),
    -- Unique: two rows sharing one stored object would delete it from under each other.
    storage_key     TEXT NOT NULL UNIQUE
                    CONSTRAINT knowledge_files_storage_key_length
                    CHECK (char_length(storage_key) BETWEEN 1 AND 1024),
    content_sha256  CHAR(64) NOT NULL
                    CONSTRAINT knowledge_files_content_sha256_hex
                    CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    chunk_count     INT NOT NULL DEFAULT 0
                    CONSTRAINT knowledge_files_chunk_count_nonnegative CHECK (chunk_count >= 0),
    status          TEXT NOT NULL DEFAULT 'processing'
                    CONSTRAINT knowledge_files_status_valid
                    CHECK (status IN ('processing', 'ready', 'failed')),
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at    TIMESTAMPTZ,
    -- Target of the chunks' composite foreign key (and the index for per-agent listings).
    CONSTRAINT knowledge_files_agent_file_key UNIQUE (agent_id, id),
    CONSTRAINT knowledge_files_failed_has_error CHECK (status <> 'failed' OR error IS NOT NULL),
    CONSTRAINT knowledge_files_processed_has_processed_at
        CHECK (status = 'processing' OR processed_at IS NOT NULL)
);
-- The ingestion worker's queue.
CREATE INDEX knowledge_files_processing_idx ON knowledge_files (created_at)
    WHERE status = 'processing';

CREATE TABLE knowledge_chunks (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Denormalised from the file so retrieval filters by agent without a join. The composite
    -- foreign key below makes it impossible for a chunk to claim another agent than its
    -- file's, which would leak one creator's knowledge into another's agent.
    agent_id     UUID NOT NULL,
    file_id      UUID NOT NULL,
    chunk_index  INT NOT NULL
                 CONSTRAINT knowledge_chunks_chunk_index_nonnegative CHECK (chunk_index >= 0),
    content      TEXT NOT NULL CONSTRAINT knowledge_chunks_content_present CHECK (content <> ''),
    metadata     JSONB NOT NULL DEFAULT '{}'
                 CONSTRAINT knowledge_chunks_metadata_object
                 CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Re-ingesting a file (retry after a crash) cannot duplicate its chunks.
    CONSTRAINT knowledge_chunks_file_chunk_key UNIQUE (file_id, chunk_index),
    -- CASCADE: deleting a file (or its agent) removes its chunks in the same statement.
    CONSTRAINT knowledge_chunks_file_fkey FOREIGN KEY (agent_id, file_id)
        REFERENCES knowledge_files (agent_id, id) ON DELETE CASCADE
);
CREATE INDEX knowledge_chunks_agent_idx ON knowledge_chunks (agent_id);

-- The embedding column. With pgvector: vector(384) and an HNSW index for cosine distance
-- (`ORDER BY embedding <=> $1`). Without it (a managed server that does not offer the
-- extension, or a role that may not create it) the same migration still applies and the
-- column is real[]; retrieval then ranks an agent's chunks in the application, which is
-- fine at knowledge-base sizes. Decided here at run time so one file serves both; moving a
-- real[] deployment to pgvector later is a new migration (ALTER COLUMN ... TYPE vector(384)
-- USING embedding::vector(384), then the index).
--
-- 384 dimensions is fixed by the embedding model (a MiniLM/BGE-small class model); another
-- model means a new migration and re-embedding every chunk.
--
-- NULL means "not embedded yet": the ingester may store chunks before their embeddings.
--
-- Retrieval always filters by agent_id. An HNSW scan applies that filter after the index
-- lookup; pgvector 0.8's iterative scans (SET hnsw.iterative_scan = relaxed_order) keep such
-- a filtered query from coming back short, and for a small knowledge base the planner will
-- rightly prefer knowledge_chunks_agent_idx and an exact sort.
DO $$
DECLARE
    vector_schema name;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS vector;
    EXCEPTION
        -- Not installed on the server (control file or library missing), or not allowed for
        -- this role. Anything else is a real error and aborts the migration.
        WHEN undefined_file OR feature_not_supported OR insufficient_privilege THEN
            RAISE NOTICE 'pgvector unavailable (%): knowledge_chunks.embedding is real[]', SQLERRM;
    END;

    SELECT extnamespace::regnamespace::name INTO vector_schema
    FROM pg_extension WHERE extname = 'vector';

    IF vector_schema IS NOT NULL THEN
        -- Schema-qualified: the extension may live outside the search_path (e.g. "extensions").
        EXECUTE format(
            'ALTER TABLE knowledge_chunks ADD COLUMN embedding %I.vector(384)', vector_schema
        );
        EXECUTE format(
            'CREATE INDEX knowledge_chunks_embedding_idx ON knowledge_chunks'
            ' USING hnsw (embedding %I.vector_cosine_ops)',
            vector_schema
        );
    ELSE
        ALTER TABLE knowledge_chunks ADD COLUMN embedding real[]
            CONSTRAINT knowledge_chunks_embedding_dimensions CHECK (
                array_ndims(embedding) = 1
                AND array_length(embedding, 1) = 384
                AND array_position(embedding, NULL) IS NULL
            );
    END IF;
END
$$;
