"""The worker's long-running loops stop when cancelled, even when redis-py swallowed the
cancellation in the middle of a command (redis/redis-py#2028, #2551; common/cancellation.py):
cancelled at many moments of their Redis round trips, with their stop event never set, each
loop ends within seconds, on the single node and on the Valkey cluster."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from common import keyspace
from control_plane.settings import UsageIngestSettings
from control_plane.usage_ingest import UsageIngester
from control_plane.worker import PeriodicJob, run_periodically
from tests.control_plane.conftest import Backend

ATTEMPTS = 40
# Generous: a loaded 2-core box may take a while to run the loop's way out.
STUCK_S = 3


async def cancelled_late(loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> list[str]:
    """Start `loop`, cancel it at a random moment, ATTEMPTS times; where it was, each time it
    was still running STUCK_S later (it is then stopped through its event). A loop that
    swallowed its cancellation polls on until stopped: any bound tells it apart."""
    moments = random.Random(2028)
    stuck = []
    for attempt in range(ATTEMPTS):
        stop = asyncio.Event()
        task = asyncio.create_task(loop(stop))
        await asyncio.sleep(moments.uniform(0, 0.02))
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=STUCK_S)
        if not done:
            where = [f"{f.f_code.co_name}:{f.f_lineno}" for f in task.get_stack(limit=8)]
            stuck.append(f"attempt {attempt}: {' > '.join(where)}")
            stop.set()
            await asyncio.wait([task], timeout=5)
        assert task.done()
    return stuck


async def test_a_periodic_job_of_redis_commands_stops_when_cancelled(backend: Backend) -> None:
    redis, key = backend.redis, keyspace.quota(5, "cancel-probe")

    async def job() -> None:
        await redis.set(key, 1, ex=60)
        await redis.get(key)

    def loop(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
        return run_periodically(PeriodicJob("probe", 0.001, job), stop)

    assert await cancelled_late(loop) == []


async def test_usage_ingestion_stops_when_cancelled_while_polling(
    backend: Backend, db_pool: asyncpg.Pool
) -> None:
    usage = dataclasses.replace(UsageIngestSettings.from_env({}), read_block_ms=5)
    ingester = UsageIngester(backend.redis, db_pool, settings=usage)
    await ingester.ensure_groups()

    assert await cancelled_late(ingester.run) == []
