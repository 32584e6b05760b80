"""The re-embed job's query at 100,000 chunks: EXPLAIN ANALYZE before (IS DISTINCT FROM, a
scan of every chunk) and now (two ranges of migration 0021's index).

    python -m loadtests.reembed_query [--agents 100] [--chunks-per-agent 1000]

Starts a throwaway Postgres, applies the migrations, stores the chunks (random vectors; the
HNSW index is dropped first, the query never reads it) and prints both plans twice over:
nothing to re-embed (the job's every-minute case) and every chunk of another model (a model
change being re-embedded, one batch of 64).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg

from common.migrations import migrate_url
from control_plane.knowledge.reembed import OTHER_MODEL_CHUNKS_SQL
from devstack import servers
from devstack.servers import free_port
from tests.factories import make_agent

BEFORE = """SELECT id, agent_id::text AS agent_id, content FROM knowledge_chunks
            WHERE embedding_model IS DISTINCT FROM $1
            ORDER BY agent_id, id LIMIT $2"""
MODEL = "local/all-MiniLM-L6-v2"


async def fill(db: asyncpg.Pool, agents: int, per_agent: int) -> None:
    await db.execute("DROP INDEX knowledge_chunks_embedding_idx")
    for _ in range(agents):
        agent = await make_agent(db)
        file_id = await db.fetchval(
            """INSERT INTO knowledge_files (agent_id, filename, file_type, file_size, storage_key,
                                            content_sha256, status, chunk_count, processed_at)
               VALUES ($1, 'f.txt', 'txt', 1, $2, $3, 'ready', $4, now()) RETURNING id""",
            agent.agent_id, f"bench/{uuid.uuid4()}", uuid.uuid4().hex * 2, per_agent,
        )  # fmt: skip
        await db.execute(
            """INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content, embedding,
                                             embedding_model, embedding_dimension)
               SELECT $1, $2, g, repeat('word' || g || ' ', 150),
                      (SELECT array_agg(random() - 0.5) FROM generate_series(1, 384)
                       WHERE g >= 0)::vector,
                      $3, 384
               FROM generate_series(0, $4 - 1) AS g""",
            agent.agent_id, file_id, MODEL, per_agent,
        )  # fmt: skip
    await db.execute("VACUUM ANALYZE knowledge_chunks")


async def main(agents: int, per_agent: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="agentlink-reembed-"))
    root.chmod(0o755)  # noqa: ASYNC240 - set-up, before anything runs
    postgres = servers.PostgresServer(root / "postgres", free_port(), durable=False)
    try:
        postgres.start()
        await migrate_url(postgres.url)
        db = await asyncpg.create_pool(postgres.url, min_size=1, max_size=2)
        assert db is not None
        await fill(db, agents, per_agent)
        sizes = await db.fetchrow(
            "SELECT pg_size_pretty(pg_total_relation_size('knowledge_chunks')) AS chunks,"
            " pg_size_pretty(pg_relation_size('knowledge_chunks_model_idx')) AS model_index"
        )
        print(f"{agents * per_agent} chunks: table {sizes['chunks']},"
              f" knowledge_chunks_model_idx {sizes['model_index']}")  # fmt: skip
        cases = (("nothing to re-embed", MODEL), ("every chunk of another model", "openai/new"))
        for case, current in cases:
            for label, sql in (("before (IS DISTINCT FROM)", BEFORE),
                               ("0021 (two index ranges)", OTHER_MODEL_CHUNKS_SQL)):  # fmt: skip
                for _ in range(2):  # the second run is the one shown: warm
                    rows = await db.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, current, 64)
                print(f"\n--- {case}, {label}")
                print("\n".join(row[0] for row in rows))
        await db.close()
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--chunks-per-agent", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.chunks_per_agent))
