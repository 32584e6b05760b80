"""Re-embedding after a change of embedding model (a worker job).

Every chunk records the model that made its vector. When `EMBEDDING_*` names another model,
chunks of the old one are found here, embedded again in batches and updated in place; each
batch bumps the knowledge version of the agents it touched. Meanwhile retrieval compares the
question only with vectors of its own model (common/knowledge/retrieval.py), so no answer
ever mixes two vector spaces; the full-text half keeps finding the rest.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg

from common.knowledge.vectors import pgvector_literal
from common.redis_store import RedisClient
from control_plane.knowledge.ingest import KnowledgeMetrics
from control_plane.knowledge.settings import KnowledgeBaseSettings
from control_plane.knowledge.versions import knowledge_change

if TYPE_CHECKING:  # the worker loads NumPy with its embedder only (control_plane/worker.py)
    from common.knowledge.embedding import Embedder

# Up to $2 chunks whose vector is not of model $1, an old model's agent by agent. The job runs
# every KNOWLEDGE_REEMBED_INTERVAL_S and nearly always finds nothing: "IS DISTINCT FROM" could
# only be answered by reading every chunk, so it is asked as the two ranges around $1 of
# knowledge_chunks_model_idx (migrations/0021; no model is '', before any), each read in the
# index's order and only as far as the batch needs.
OTHER_MODEL_CHUNKS_SQL = """
SELECT id, agent_id::text AS agent_id, content FROM (
    (SELECT id, agent_id, content FROM knowledge_chunks WHERE coalesce(embedding_model, '') < $1
     ORDER BY coalesce(embedding_model, ''), agent_id, id LIMIT $2)
    UNION ALL
    (SELECT id, agent_id, content FROM knowledge_chunks WHERE coalesce(embedding_model, '') > $1
     ORDER BY coalesce(embedding_model, ''), agent_id, id LIMIT $2)
) other_models
LIMIT $2
"""


async def reembed_batch(
    db: asyncpg.Pool,
    redis: RedisClient,
    embedder: Embedder,
    settings: KnowledgeBaseSettings,
    metrics: KnowledgeMetrics | None = None,
) -> int:
    """Re-embed up to one batch of chunks of another model; returns how many."""
    model = embedder.model
    rows = await db.fetch(OTHER_MODEL_CHUNKS_SQL, model, settings.embed_batch)
    if not rows:
        return 0
    vectors = await embedder.embed([row["content"] for row in rows])
    async with db.acquire() as connection, connection.transaction():
        await connection.executemany(
            """UPDATE knowledge_chunks
               SET embedding = $2::vector, embedding_model = $3, embedding_dimension = $4
               WHERE id = $1 AND embedding_model IS DISTINCT FROM $3""",
            [
                (row["id"], pgvector_literal(vector), model, embedder.dimension)
                for row, vector in zip(rows, vectors, strict=True)
            ],
        )
    if metrics is not None:
        metrics.chunks_embedded.inc(len(rows))
    for agent_id in sorted({row["agent_id"] for row in rows}):
        async with knowledge_change(db, redis, agent_id) as change:
            if change is not None:
                await change.bump(redis, settings.unit_price)
    return len(rows)


async def reembed_all(
    db: asyncpg.Pool,
    redis: RedisClient,
    embedder: Embedder,
    settings: KnowledgeBaseSettings,
    *,
    metrics: KnowledgeMetrics | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Batches until no chunk of another model is left (or `stop`)."""
    total = 0
    while stop is None or not stop.is_set():
        done = await reembed_batch(db, redis, embedder, settings, metrics)
        if not done:
            break
        total += done
    return total
