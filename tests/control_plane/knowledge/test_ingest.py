"""The worker's ingestion in process: upload → extract → chunk → embed (the real local model)
→ ready and retrievable, the knowledge version bumped and written to the gateway's record;
failures with reasons; re-embedding after a change of model; deletes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from common import keyspace
from common.knowledge.local_embedder import LocalEmbedder
from common.knowledge.retrieval import Question, retrieve
from common.knowledge.vectors import use_binary_vectors
from control_plane.knowledge.ingest import KnowledgeIngester, KnowledgeMetrics
from control_plane.knowledge.reembed import OTHER_MODEL_CHUNKS_SQL, reembed_all
from control_plane.knowledge.settings import KnowledgeBaseSettings
from tests.control_plane.knowledge.conftest import Creator
from tests.control_plane.knowledge.pdfs import make_pdf


@pytest_asyncio.fixture(scope="module")
async def local_embedder() -> AsyncIterator[LocalEmbedder]:
    local = LocalEmbedder()
    yield local
    await local.aclose()


@pytest.fixture
def ingester(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, local_embedder: LocalEmbedder,
    knowledge_env: dict[str, str],
) -> KnowledgeIngester:  # fmt: skip
    settings = KnowledgeBaseSettings.from_env(knowledge_env)
    return KnowledgeIngester(
        db_pool, redis, local_embedder, settings, KnowledgeMetrics(CollectorRegistry())
    )


async def drain(ingester: KnowledgeIngester) -> None:
    for _ in range(500):  # files other tests left queued are processed too
        if not await ingester.process_next():
            return
    raise AssertionError("the queue did not drain")


async def file_status(creator: Creator) -> dict[str, dict[str, object]]:
    listed = await creator.client.get(creator.url, headers=creator.headers)
    return {item["filename"]: item for item in listed.json()["items"]}


MANUAL = [
    "Returns. Unused items can be returned within 30 days of delivery for a full refund.",
    "Warranty. The Tern vacuum flask, model code QF-2231, has a warranty of 36 months. "
    "Its double steel wall keeps drinks hot for twelve hours.",
]


async def test_an_uploaded_pdf_becomes_ready_and_retrievable(
    creator: Creator, ingester: KnowledgeIngester, local_embedder: LocalEmbedder,
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis,
) -> None:  # fmt: skip
    await redis.hset(keyspace.agent_record(creator.agent_id), mapping={"status": "draft"})
    response = await creator.upload(
        ("manual.pdf", make_pdf(MANUAL)), ("faq.md", b"# FAQ\n\nShipping takes two days.")
    )
    assert response.status_code == 202

    await drain(ingester)

    files = await file_status(creator)
    assert files["manual.pdf"]["status"] == "ready"
    assert files["faq.md"]["status"] == "ready"
    assert files["manual.pdf"]["chunk_count"] == 1  # two short pages: one chunk
    rows = await db_pool.fetch(
        "SELECT embedding_model, embedding_dimension FROM knowledge_chunks WHERE agent_id = $1",
        creator.agent_id,
    )
    assert {(r["embedding_model"], r["embedding_dimension"]) for r in rows} == {
        ("local/all-MiniLM-L6-v2", 384)
    }
    assert await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_chunk_staging s JOIN knowledge_files f ON f.id = s.file_id"
        " WHERE f.agent_id = $1", creator.agent_id,
    ) == 0  # fmt: skip
    version = await db_pool.fetchval(
        "SELECT knowledge_version FROM agents WHERE id = $1", creator.agent_id
    )
    assert version == 2  # one bump per file that became ready
    record = await redis.hgetall(keyspace.agent_record(creator.agent_id))
    assert record[b"status"] == b"draft"
    assert record[b"version"] == b"1"

    question = "How long is the warranty of the QF-2231 flask?"
    vector = (await local_embedder.embed([question]))[0]
    async with db_pool.acquire() as connection:
        await use_binary_vectors(connection)
        passages = await retrieve(
            connection, Question(creator.agent_id, question, vector, local_embedder.model)
        )
    assert passages
    assert "36 months" in passages[0].content
    assert passages[0].filename == "manual.pdf"
    assert passages[0].vector_rank == 1
    assert passages[0].text_rank == 1


async def test_files_that_cannot_be_read_fail_with_a_reason(
    creator: Creator, ingester: KnowledgeIngester, db_pool: asyncpg.Pool
) -> None:
    # A PDF without a text layer passes the upload checks (it opens) but has nothing to index.
    response = await creator.upload(("scan.pdf", make_pdf([""])))
    assert response.status_code == 202, response.text

    await drain(ingester)

    scan = (await file_status(creator))["scan.pdf"]
    assert scan["status"] == "failed"
    assert "No text could be extracted" in str(scan["error"])
    assert scan["chunk_count"] == 0


async def test_a_file_that_keeps_killing_the_worker_is_failed(
    creator: Creator, ingester: KnowledgeIngester, db_pool: asyncpg.Pool
) -> None:
    file_id = (await creator.upload(("a.txt", b"text"))).json()["items"][0]["id"]
    await db_pool.execute("UPDATE knowledge_files SET attempts = 5 WHERE id = $1", file_id)

    await drain(ingester)

    assert (await file_status(creator))["a.txt"]["error"] == (
        "Processing was interrupted too many times."
    )


async def test_a_file_deleted_while_queued_is_skipped(
    creator: Creator, ingester: KnowledgeIngester
) -> None:
    file_id = (await creator.upload(("a.txt", b"text"))).json()["items"][0]["id"]
    await creator.client.delete(f"{creator.url}/{file_id}", headers=creator.headers)
    await drain(ingester)
    assert await file_status(creator) == {}


async def test_deleting_a_ready_file_bumps_the_version_and_hides_it(
    creator: Creator, ingester: KnowledgeIngester, local_embedder: LocalEmbedder,
    db_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    file_id = (await creator.upload(("a.txt", b"The office opens at nine."))).json()["items"][0][
        "id"
    ]
    await drain(ingester)

    deleted = await creator.client.delete(f"{creator.url}/{file_id}", headers=creator.headers)

    assert deleted.json() == {"deleted": 1, "knowledge_version": 2}
    assert await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_chunks WHERE agent_id = $1", creator.agent_id
    ) == 0  # fmt: skip


# Models sorting before and after the current one, and none (a vector from before 0008): the
# two ranges the job's query reads (no model sorts first).
@pytest.mark.parametrize("old_model", ["openai/old-model", "aaa/old-model", None])
async def test_a_new_embedding_model_reembeds_every_chunk(
    *,
    creator: Creator, ingester: KnowledgeIngester, local_embedder: LocalEmbedder,
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, knowledge_env: dict[str, str],
    old_model: str | None,
) -> None:  # fmt: skip
    await creator.upload(("a.txt", b"Alpha paragraph.\n\n" * 3))
    await drain(ingester)
    await db_pool.execute(
        "UPDATE knowledge_chunks SET embedding_model = $2,"
        " embedding_dimension = CASE WHEN $2::text IS NOT NULL THEN 384 END WHERE agent_id = $1",
        creator.agent_id, old_model,
    )  # fmt: skip
    before = await db_pool.fetchval(
        "SELECT knowledge_version FROM agents WHERE id = $1", creator.agent_id
    )

    settings = KnowledgeBaseSettings.from_env(knowledge_env)
    await reembed_all(db_pool, redis, local_embedder, settings)

    models = await db_pool.fetch(
        "SELECT DISTINCT embedding_model FROM knowledge_chunks WHERE agent_id = $1",
        creator.agent_id,
    )
    assert [row["embedding_model"] for row in models] == [local_embedder.model]
    after = await db_pool.fetchval(
        "SELECT knowledge_version FROM agents WHERE id = $1", creator.agent_id
    )
    assert after > before
    assert await reembed_all(db_pool, redis, local_embedder, settings) == 0


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def test_the_reembed_job_reads_an_index_range_not_every_chunk(db_pool: asyncpg.Pool) -> None:
    """The job's query (every KNOWLEDGE_REEMBED_INTERVAL_S) is answered from
    knowledge_chunks_model_idx, as two ranges of it. (Sequential scans are priced out: the
    test database is too small for the planner to prefer an index; at 100,000 chunks it does
    by itself.)"""
    async with db_pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        explained = await connection.fetchval(
            "EXPLAIN (FORMAT JSON) " + OTHER_MODEL_CHUNKS_SQL, "local/all-MiniLM-L6-v2", 64
        )
    if isinstance(explained, str):  # the pool decodes json itself, a plain connection does not
        explained = json.loads(explained)
    nodes = list(plan_nodes(explained[0]["Plan"]))
    assert not [node for node in nodes if node["Node Type"] == "Seq Scan"]
    probes = [node for node in nodes if "Index Name" in node]
    assert len(probes) == 2, probes  # one per range, each bounded by the index
    for probe in probes:
        assert probe["Index Name"] == "knowledge_chunks_model_idx"
        assert "COALESCE(embedding_model" in probe["Index Cond"]


async def test_retrieval_does_not_use_the_reembed_index(db_pool: asyncpg.Pool) -> None:
    """Retrieval's per-agent, per-model filter cannot match knowledge_chunks_model_idx (it is
    over coalesce(embedding_model, '')), so it keeps the plans it was measured with."""
    async with db_pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        await connection.execute("SET LOCAL enable_bitmapscan = off")
        explained = await connection.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT id FROM knowledge_chunks"
            " WHERE agent_id = $1 AND embedding_model = $2 ORDER BY id LIMIT 20",
            "00000000-0000-0000-0000-000000000000", "local/all-MiniLM-L6-v2",
        )  # fmt: skip
    if isinstance(explained, str):
        explained = json.loads(explained)
    used = {node.get("Index Name") for node in plan_nodes(explained[0]["Plan"])}
    assert "knowledge_chunks_model_idx" not in used, used


async def test_two_ingesters_never_process_one_file_twice(
    creator: Creator, ingester: KnowledgeIngester, db_pool: asyncpg.Pool
) -> None:
    text = "\n\n".join(f"Paragraph {n}. " + "words " * 60 for n in range(12))
    await creator.upload(("long.txt", text.encode()))

    await asyncio.gather(drain(ingester), drain(ingester))

    row = await db_pool.fetchrow(
        "SELECT status, chunk_count, attempts FROM knowledge_files WHERE agent_id = $1",
        creator.agent_id,
    )
    assert row["status"] == "ready"
    assert row["attempts"] == 1
    assert row["chunk_count"] == await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_chunks WHERE agent_id = $1", creator.agent_id
    )
