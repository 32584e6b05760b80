"""Hybrid retrieval: the passages of an agent's knowledge base that answer a question.

One SQL round trip does both searches on the agent's chunks: the vector search (pgvector HNSW,
cosine, only vectors of the question's model) and the full-text search (the chunks'
`tsvector`, GIN; the question's words OR-ed, ranked by cover density). The two ranked lists
are fused with reciprocal-rank fusion (Cormack et al. 2009: score = sum of 1 / (60 + rank)),
which needs no score calibration between the two; then every passage less cosine-similar to
the question than the threshold is dropped (seed property 18: whatever is injected is
similar to the question, even when only the full-text half found it), and the best `top_k`
are kept.

Full text catches what a small embedding model misses (product codes, names, rare terms);
vectors catch paraphrases. loadtests/retrieval_benchmark.py measures each alone and fused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from common.db import DbConnection
from common.knowledge.vectors import pgvector_literal

RRF_K = 60


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


# $1 agent, $2 question vector, $3 model, $4 file ids, $5 candidates, $6 question text
_HYBRID_SQL = """
WITH vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, embedding <=> $2::vector AS distance
        FROM knowledge_chunks
        WHERE agent_id = $1 AND embedding_model = $3
          AND (cardinality($4::uuid[]) = 0 OR file_id = ANY ($4::uuid[]))
        ORDER BY embedding <=> $2::vector
        LIMIT $5
    ) nearest
),
text_hits AS (
    SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT id, ts_rank_cd(content_tsv, terms) AS score
        FROM knowledge_chunks,
             to_tsquery('simple', replace(plainto_tsquery('english', $6)::text, ' & ', ' | '))
                 AS terms
        WHERE agent_id = $1 AND content_tsv @@ terms
          AND (cardinality($4::uuid[]) = 0 OR file_id = ANY ($4::uuid[]))
        ORDER BY score DESC
        LIMIT $5
    ) matched
)
SELECT c.id::text AS id, c.file_id::text AS file_id, f.filename, c.chunk_index, c.content,
       CASE WHEN c.embedding_model = $3 THEN 1 - (c.embedding <=> $2::vector) END AS similarity,
       v.rank AS vector_rank, t.rank AS text_rank
FROM (SELECT id FROM vector_hits UNION SELECT id FROM text_hits) hit
JOIN knowledge_chunks c ON c.id = hit.id
JOIN knowledge_files f ON f.id = c.file_id
LEFT JOIN vector_hits v ON v.id = hit.id
LEFT JOIN text_hits t ON t.id = hit.id
"""


async def retrieve(
    connection: DbConnection, question: Question, mode: Mode = Mode.HYBRID
) -> list[Passage]:
    """The passages to inject for `question`, best first (at most `top_k`)."""
    rows = await connection.fetch(
        _HYBRID_SQL,
        question.agent_id,
        pgvector_literal(question.vector),
        question.model,
        list(question.file_ids),
        question.candidates,
        question.text,
    )
    passages = [
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
    return select(passages, question.top_k, question.threshold)


def fused_score(vector_rank: int | None, text_rank: int | None, mode: Mode = Mode.HYBRID) -> float:
    """Reciprocal-rank fusion of the two ranks (a missing rank adds nothing). The single
    modes rank by one search alone, for the benchmark's comparison."""
    score = 0.0
    if vector_rank is not None and mode is not Mode.TEXT:
        score += 1.0 / (RRF_K + vector_rank)
    if text_rank is not None and mode is not Mode.VECTOR:
        score += 1.0 / (RRF_K + text_rank)
    return score


def select(passages: list[Passage], top_k: int, threshold: float | None) -> list[Passage]:
    """Best fused score first (ties: the more similar); below the threshold never."""
    kept = [
        passage
        for passage in passages
        if passage.score > 0
        and (
            threshold is None
            or (passage.similarity is not None and passage.similarity >= threshold)
        )
    ]
    kept.sort(key=lambda p: (-p.score, -(p.similarity or -2.0), p.chunk_id))
    return kept[:top_k]
