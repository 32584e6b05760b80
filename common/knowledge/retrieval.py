"""Hybrid retrieval: the passages of an agent's knowledge base that answer a question.

One SQL round trip does both searches on the agent's chunks: the vector search (pgvector
HNSW, cosine, over half-precision copies of the vectors (0020), only vectors of the
question's model) and the full-text search (the chunks' `tsvector`, GIN; the question's
lexemes OR-ed, ranked by `ts_rank`, i.e. by how often they occur: a third of the CPU of
`ts_rank_cd`'s cover density per ranked chunk, for the same recall on the benchmark). In a
large knowledge base a question's common words match most chunks and would all be ranked,
for little (they do not tell chunks apart: BM25's idf); so the full-text half ORs only the
question's rarest lexemes, by the agent's own counts (knowledge_lexemes), as many as match
at most `text_budget` chunks together. A knowledge base of at most `text_budget` chunks
keeps every lexeme (it cannot match more); codes and names, being rare, are always kept. The
two ranked lists are fused with reciprocal-rank fusion (Cormack et al. 2009: score = sum of
1 / (60 + rank)), which needs no score calibration between the two; then every passage less
cosine-similar to the question than the threshold is dropped (seed property 18: whatever is
injected is similar to the question, even when only the full-text half found it), and the
best `top_k` are kept, all in the same statement: only those passages' texts are read.

Full text catches what a small embedding model misses (product codes, names, rare terms);
vectors catch paraphrases. loadtests/retrieval_benchmark.py measures each alone and fused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from common.db import DbConnection

RRF_K = 60
DEFAULT_TEXT_BUDGET = 500  # KNOWLEDGE_TEXT_BUDGET's default


class Mode(StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Passage:
    chunk_id: str
    file_id: str
    filename: str
    chunk_index: int
    content: str
    similarity: float | None  # cosine with the question; None: embedded by another model
    vector_rank: int | None  # 1-based rank in each search; None: not in its top candidates
    text_rank: int | None
    score: float  # the fused score the passages are ordered by


@dataclass(frozen=True, slots=True)
class Question:
    agent_id: str
    text: str
    vector: Sequence[float]
    model: str  # the embedding model that made `vector`
    top_k: int = 5
    candidates: int = 20  # taken from each search before fusion
    threshold: float | None = 0.25  # None: keep passages whatever their similarity
    file_ids: tuple[str, ...] = ()  # restrict to these files; empty: the whole knowledge base
    # The full-text half keeps the question's rarest lexemes while the chunks they occur in
    # add up to at most this many (knowledge_lexemes, migrations/0018): what it ranks is
    # bounded, whatever the size of the knowledge base.
    text_budget: int = DEFAULT_TEXT_BUDGET


# $1 agent, $2 question vector, $3 model, $4 file ids, $5 candidates, $6 question text,
# $7 text budget, $8/$9 the weights of the vector/full-text ranks in the fusion (1 or 0: the
# benchmark's single modes), $10 threshold (NULL: none), $11 top k. The lexemes are
# normalised already: quoted into a tsquery as they are.
#
# Both searches yield ids and ranks only. Fusion, threshold and top k are done here as well,
# so only the returned passages' texts are read (a chunk's text lives out of line, see 0019).
# The order is score, then similarity, then id (a uuid sorts as its text does).
_HYBRID_SQL = """
WITH question_lexemes AS (
    -- One primary-key lookup per lexeme of the question, whatever the planner thinks of the
    -- agent's lexeme count (a join may hash all of them: 15 ms at 1,000 chunks).
    SELECT q.lexeme,
           coalesce((SELECT known.chunks FROM knowledge_lexemes known
                     WHERE known.agent_id = $1 AND known.lexeme = q.lexeme), 0) AS chunks
    FROM unnest(tsvector_to_array(to_tsvector('english', $6))) AS q (lexeme)
),
text_query AS (
    SELECT string_agg(
               '''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | '
           )::tsquery AS terms
    FROM (
        SELECT lexeme, sum(chunks) OVER (ORDER BY chunks, lexeme) AS matched
        FROM question_lexemes
        WHERE chunks > 0
    ) rarest_first
    -- No more chunks than the budget: ranking every match costs no more than the budget.
    WHERE matched <= $7
       OR (SELECT coalesce(sum(chunk_count), 0) FROM knowledge_files
           WHERE agent_id = $1 AND status = 'ready') <= $7
),
vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, embedding::halfvec(384) <=> $2::vector::halfvec(384) AS distance
        FROM knowledge_chunks
        WHERE agent_id = $1 AND embedding_model = $3
          AND (cardinality($4::uuid[]) = 0 OR file_id = ANY ($4::uuid[]))
        ORDER BY embedding::halfvec(384) <=> $2::vector::halfvec(384)
        LIMIT $5
    ) nearest
),
text_hits AS (
    SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT id, ts_rank(content_tsv, text_query.terms) AS score
        FROM knowledge_chunks, text_query
        WHERE agent_id = $1 AND content_tsv @@ text_query.terms
          AND (cardinality($4::uuid[]) = 0 OR file_id = ANY ($4::uuid[]))
        ORDER BY score DESC
        LIMIT $5
    ) matched
),
fused AS (
    SELECT id, v.rank AS vector_rank, t.rank AS text_rank,
           coalesce($8::float8 / (RRF_K + v.rank), 0)
           + coalesce($9::float8 / (RRF_K + t.rank), 0) AS score
    FROM vector_hits v FULL JOIN text_hits t USING (id)
),
scored AS (
    SELECT fused.*, c.file_id, c.chunk_index,
           CASE WHEN c.embedding_model = $3 THEN 1 - (c.embedding <=> $2::vector) END
               AS similarity
    FROM fused JOIN knowledge_chunks c ON c.id = fused.id
    WHERE fused.score > 0
),
kept AS (
    SELECT * FROM scored
    WHERE $10::float8 IS NULL OR similarity >= $10::float8
    ORDER BY score DESC, similarity DESC NULLS LAST, id
    LIMIT $11
)
SELECT kept.id::text AS id, kept.file_id::text AS file_id, f.filename, kept.chunk_index,
       c.content, kept.similarity, kept.vector_rank, kept.text_rank
FROM kept
JOIN knowledge_chunks c ON c.id = kept.id
JOIN knowledge_files f ON f.id = kept.file_id
ORDER BY kept.score DESC, kept.similarity DESC NULLS LAST, kept.id
""".replace("RRF_K", str(RRF_K))

# Connection settings retrieval relies on (the gateway's pool and the benchmark's): an HNSW
# scan filtered by agent keeps looking until it has enough of that agent's chunks
# (pgvector >= 0.8's iterative scan) instead of coming back short.
SERVER_SETTINGS = {"hnsw.iterative_scan": "relaxed_order"}


async def retrieve(
    connection: DbConnection, question: Question, mode: Mode = Mode.HYBRID
) -> list[Passage]:
    """The passages to inject for `question`, best first (at most `top_k`). The connection
    sends vectors in pgvector's binary form (common/db.py `create_pool(binary_vectors=True)`,
    or common/knowledge/vectors.py `use_binary_vectors` on a connection of its own)."""
    rows = await connection.fetch(
        _HYBRID_SQL,
        question.agent_id,
        question.vector,
        question.model,
        list(question.file_ids),
        question.candidates,
        question.text,
        question.text_budget,
        0.0 if mode is Mode.TEXT else 1.0,
        0.0 if mode is Mode.VECTOR else 1.0,
        question.threshold,
        question.top_k,
    )
    return [
        Passage(
            chunk_id=row["id"],
            file_id=row["file_id"],
            filename=row["filename"],
            chunk_index=row["chunk_index"],
            content=row["content"],
            similarity=row["similarity"],
            vector_rank=row["vector_rank"],
            text_rank=row["text_rank"],
            score=fused_score(row["vector_rank"], row["text_rank"], mode),
        )
        for row in rows
    ]


def fused_score(vector_rank: int | None, text_rank: int | None, mode: Mode = Mode.HYBRID) -> float:
    """Reciprocal-rank fusion of the two ranks (a missing rank adds nothing). The single
    modes rank by one search alone, for the benchmark's comparison. _HYBRID_SQL orders and
    cuts by the same sum."""
    score = 0.0
    if vector_rank is not None and mode is not Mode.TEXT:
        score += 1.0 / (RRF_K + vector_rank)
    if text_rank is not None and mode is not Mode.VECTOR:
        score += 1.0 / (RRF_K + text_rank)
    return score
