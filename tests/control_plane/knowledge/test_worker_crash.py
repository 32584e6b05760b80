"""The worker as a real process, SIGKILLed in the middle of a file: nothing of the file is
visible to retrieval, and a restarted worker finishes it from where the dead one stopped,
every chunk exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg

from common.knowledge.chunking import split_text
from devstack.servers import free_port
from tests.control_plane.knowledge.conftest import Creator
from tests.control_plane.test_worker_process import Worker
from tests.processes import Servers, worker_env
from tests.support import wait_until

PARAGRAPHS = [
    f"Section {n}. The maintenance schedule for machine {n} requires a check every {n + 2} "
    f"weeks, and the spare part kit number {1000 + n} must be kept in stock at the depot."
    for n in range(36)
]


async def test_sigkill_mid_file_leaves_nothing_visible_and_restart_finishes_it(
    *, creator: Creator, db_pool: asyncpg.Pool, servers: Servers, database_url: str,
    knowledge_env: dict[str, str], tmp_path: Path,
) -> None:  # fmt: skip
    await creator.client.put(
        f"/api/v1/agents/{creator.agent_id}", headers=creator.headers,
        json={"config": {"knowledge": {"chunk_size": 200, "chunk_overlap": 0}}},
    )  # fmt: skip
    text = "\n\n".join(PARAGRAPHS)
    uploaded = await creator.upload(("manual.txt", text.encode()))
    file_id = uploaded.json()["items"][0]["id"]
    expected = len(split_text(text, 200, 0))
    knowledge = {name: value for name, value in knowledge_env.items() if "KNOWLEDGE_" in name}
    fast = {"KNOWLEDGE_EMBED_BATCH": "2", "KNOWLEDGE_POLL_INTERVAL_S": "0.1",
            "WORKER_METRICS_PORT": str(free_port())}  # fmt: skip
    env = os.environ | worker_env(database_url, servers.redis_url, **(knowledge | fast))

    async def staged() -> int:
        count: int = await db_pool.fetchval(
            "SELECT count(*) FROM knowledge_chunk_staging WHERE file_id = $1", file_id
        )
        return count

    async def visible() -> int:
        count: int = await db_pool.fetchval(
            "SELECT count(*) FROM knowledge_chunks WHERE file_id = $1", file_id
        )
        return count

    async def some_staged() -> bool:
        return await staged() >= 6

    first = Worker(env, tmp_path / "worker-1.log")
    first.start()
    try:
        await wait_until(some_staged, 60, "the first worker to embed a few batches")
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    finally:
        first.stop()
    killed_at = await staged()
    row = await db_pool.fetchrow(
        "SELECT status, attempts FROM knowledge_files WHERE id = $1", file_id
    )
    assert row["status"] == "processing"
    assert row["attempts"] == 1
    assert 0 < killed_at < expected, "the kill came after the file was finished"
    assert await visible() == 0, "a half-indexed file is visible to retrieval"

    second = Worker(env, tmp_path / "worker-2.log")
    second.start()
    try:

        async def ready() -> bool:
            status = await db_pool.fetchval(
                "SELECT status FROM knowledge_files WHERE id = $1", file_id
            )
            return bool(status == "ready")

        await wait_until(ready, 90, "the restarted worker to finish the file")
    finally:
        second.stop()
        for log in sorted(tmp_path.glob("*.log")):  # noqa: ASYNC240 - shown on failure only
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")

    rows = await db_pool.fetch(
        "SELECT chunk_index, content FROM knowledge_chunks WHERE file_id = $1 ORDER BY chunk_index",
        file_id,
    )
    assert [row["chunk_index"] for row in rows] == list(range(expected))
    assert [row["content"] for row in rows] == [c.text for c in split_text(text, 200, 0)]
    final = await db_pool.fetchrow(
        "SELECT chunk_count, attempts FROM knowledge_files WHERE id = $1", file_id
    )
    assert final["chunk_count"] == expected
    assert final["attempts"] == 2
    assert await staged() == 0
