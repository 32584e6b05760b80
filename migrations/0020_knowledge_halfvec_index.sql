-- Knowledge retrieval, part five: the vector search walks an HNSW index of half-precision
-- copies of the vectors.
--
-- The vector half of retrieval is an HNSW walk; its cost is mostly reading graph elements,
-- each holding a 384-float vector (1.5 KB). A halfvec element is half of that (768 bytes):
-- twice the elements per page and in shared buffers, and the cheaper distance. At 100,000
-- chunks the walk alone took ~35% less backend CPU, a whole retrieval 13-16% less
-- (loadtests/retrieval_benchmark.py); a small knowledge base, searched exactly (no
-- index), pays the cast instead: +0.3 ms of CPU at 1,000 chunks. The order of the nearest
-- chunks barely moves (16-bit floats keep ~3 significant digits of a unit vector's
-- components; recall@5 on the corpus is unchanged); the similarity retrieval reports and
-- thresholds is still the cosine of the full vectors (common/knowledge/retrieval.py).
--
-- The new index is built before the old one is dropped: the build lets retrieval read
-- (SHARE lock: chunk writes wait), and the drop's exclusive lock lasts only to the commit.
-- Without pgvector (real[] embeddings, see 0003) there is no vector index: nothing to do.
DO $$
DECLARE
    vector_schema name;
BEGIN
    SELECT extnamespace::regnamespace::name INTO vector_schema
    FROM pg_extension WHERE extname = 'vector';
    IF vector_schema IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE INDEX knowledge_chunks_embedding_half_idx ON knowledge_chunks'
        ' USING hnsw ((embedding::%1$I.halfvec(384)) %1$I.halfvec_cosine_ops)',
        vector_schema
    );
    DROP INDEX knowledge_chunks_embedding_idx;
    ALTER INDEX knowledge_chunks_embedding_half_idx RENAME TO knowledge_chunks_embedding_idx;
END
$$;
