"""The worker as a real process: SIGKILLed in the middle of ingesting, restarted, and still
every event is in call_logs exactly once with the aggregates matching the events; SIGTERM
finishes the batch in flight before exiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from control_plane.usage_ingest import GROUP, ingest_once
from devstack.servers import free_port
from tests.control_plane.helpers import Account, Expected, Producer, assert_totals
from tests.processes import Servers, worker_env
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
CALLS = 3000
CONCURRENCY = 64


class Worker:
    """`python -m control_plane.worker` in a subprocess, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.metrics_port = int(env["WORKER_METRICS_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "control_plane.worker"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=15)

    def signal(self, sig: int) -> int:
        self.send(sig)
        return self.wait()

    def stop(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=15)


WorkerFactory = Callable[..., Worker]


@pytest.fixture
def worker_factory(servers: Servers, database_url: str, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Workers with fast intervals on the session's servers; killed at the end of the test."""
    workers: list[Worker] = []

    def make(**overrides: str) -> Worker:
        fast = {
            "USAGE_READ_COUNT": "10",  # small reads: many batches, so the kill lands mid-run
            "USAGE_BATCH_MAX": "40",
            "USAGE_READ_BLOCK_MS": "200",
            "USAGE_CLAIM_INTERVAL_S": "0.2",
            "USAGE_CLAIM_MIN_IDLE_S": "0.5",
            "USAGE_LAG_INTERVAL_S": "0.2",
            "WORKER_REAPER_INTERVAL_S": "0.2",
            "WORKER_METRICS_PORT": str(free_port()),
        }
        env = os.environ | worker_env(database_url, servers.redis_url, **(fast | overrides))
        worker = Worker(env, tmp_path / f"worker-{len(workers) + 1}.log")
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()
        if worker.log.exists():  # shown by pytest only when the test failed
            print(f"--- {worker.log.name}\n{worker.log.read_text()[-5000:]}")


@contextlib.asynccontextmanager
async def hold_agent_row(
    db: asyncpg.Pool, agent_id: str
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Lock one agent's row: a worker batch that bills that agent blocks inside its
    transaction, its entries delivered and not acknowledged. Yields a release function."""
    async with db.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        released = False

        async def release() -> None:
            nonlocal released
            if not released:
                released = True
                await transaction.rollback()

        try:
            await connection.execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", agent_id)
            yield release
        finally:
            await release()


async def count_rows(db: asyncpg.Pool, user_ids: list[str]) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM call_logs WHERE user_id = ANY($1::uuid[])", user_ids
    )
    return count


async def drained(redis: redis_asyncio.Redis, shards: set[int]) -> bool:
    for shard in shards:
        stream = keyspace.usage_stream(shard)
        if await redis.xlen(stream):
            return False
        summary = await redis.xpending(stream, GROUP)
        if summary["pending"]:
            return False
    return True


async def test_sigkill_mid_ingestion_loses_nothing_and_counts_nothing_twice(
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    producer: Producer,
    worker_factory: WorkerFactory,
) -> None:
    first, second = worker_factory(), worker_factory()
    accounts: list[Account] = [await producer.account(quota=20_000) for _ in range(4)]
    agents = [await producer.agent(Decimal("0.01")), await producer.agent(Decimal("0.03"))]
    user_ids = [a.developer.user_id for a in accounts]
    shards = {a.developer.shard for a in accounts}
    expected = Expected()
    rng = random.Random(20261122)
    plan = [(rng.choice(accounts), rng.choice(agents), rng.random() < 0.8) for _ in range(CALLS)]

    async def produce() -> None:
        for start in range(0, CALLS, CONCURRENCY):
            await asyncio.gather(
                *(
                    producer.call(account, agent, billable=billable, expected=expected)
                    for account, agent, billable in plan[start : start + CONCURRENCY]
                )
            )

    first.start()
    production = asyncio.create_task(produce())
    # Liveness bounds, not timings: generous, because a loaded 2-core CI box starts a worker
    # process and ingests thousands of events several times slower than an idle one.
    await wait_until(
        lambda: _at_least(db_pool, user_ids, CALLS // 10), 60, "the first worker to ingest"
    )
    # Hold one agent's row: the worker's next batch blocks inside its transaction, with its
    # entries delivered and not acknowledged. Then kill it right there.
    async with hold_agent_row(db_pool, agents[0].agent_id) as release:
        await wait_until(lambda: _has_pending(redis, shards), 60, "a batch in flight")
        await asyncio.sleep(0.1)
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
        await release()
    killed_at = await count_rows(db_pool, user_ids)
    await production

    second.start()
    try:
        await wait_until(lambda: _at_least(db_pool, user_ids, CALLS), 90, "every event")
    except AssertionError as timeout:
        ingested = await count_rows(db_pool, user_ids)
        raise AssertionError(
            f"{timeout}: {ingested} of {CALLS} rows, {killed_at} at the kill"
        ) from None
    await wait_until(lambda: drained(redis, shards), 30, "the streams to drain")

    assert killed_at < CALLS, "the kill came after everything was ingested"
    assert await count_rows(db_pool, user_ids) == CALLS
    await assert_totals(db_pool, expected, accounts, agents)
    assert len(expected.billable) == sum(billable for _, _, billable in plan)

    # The restarted worker serves its metrics and stops cleanly on SIGTERM.
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{second.metrics_port}/metrics")
    assert response.status_code == 200
    assert 'agentlink_worker_usage_events_ingested_total{billable="true"}' in response.text
    assert "agentlink_worker_usage_stream_lag" in response.text
    # What the killed worker had in flight was taken over (XAUTOCLAIM), not lost.
    (claimed,) = [
        float(line.split()[-1])
        for line in response.text.splitlines()
        if line.startswith("agentlink_worker_usage_claimed_total")
    ]
    assert claimed > 0
    assert second.signal(signal.SIGTERM) == 0


async def _has_pending(redis: redis_asyncio.Redis, shards: set[int]) -> bool:
    for shard in shards:
        summary = await redis.xpending(keyspace.usage_stream(shard), GROUP)
        if summary["pending"]:
            return True
    return False


async def _nothing_pending(redis: redis_asyncio.Redis, shards: set[int]) -> bool:
    return not await _has_pending(redis, shards)


async def _at_least(db: asyncpg.Pool, user_ids: list[str], count: int) -> bool:
    return await count_rows(db, user_ids) >= count


async def test_sigterm_finishes_the_batch_in_flight_before_exiting(
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    producer: Producer,
    worker_factory: WorkerFactory,
) -> None:
    worker = worker_factory(USAGE_CLAIM_MIN_IDLE_S="60")  # no takeover of its own batch
    account = await producer.account()
    agent = await producer.agent()
    user_ids = [account.developer.user_id]
    shards = {account.developer.shard}
    expected = Expected()
    worker.start()
    await producer.call(account, agent, billable=True, expected=expected)
    await wait_until(lambda: _at_least(db_pool, user_ids, 1), 60, "the worker to start")
    # The first event's row is visible before its XACK: wait for the ack too, or its pending
    # entry would pass for the held batch below.
    await wait_until(lambda: _nothing_pending(redis, shards), 60, "the first event's ack")

    async with hold_agent_row(db_pool, agent.agent_id) as release:
        for _ in range(20):  # billable: their batch must update the held agent row
            await producer.call(account, agent, billable=True, expected=expected)
        await wait_until(lambda: _has_pending(redis, shards), 60, "a batch in flight")
        worker.send(signal.SIGTERM)
        await asyncio.sleep(0.5)
        # Still there: it waits for its batch rather than dropping it or acking it unwritten.
        assert worker.running()
        assert await count_rows(db_pool, user_ids) == 1
        assert await _has_pending(redis, shards)
        await release()
    assert await asyncio.to_thread(worker.wait) == 0
    # Everything it had read is written and acknowledged; what it never read is still there
    # for the next worker, undelivered.
    assert not await _has_pending(redis, shards)
    left = await redis.xlen(keyspace.usage_stream(account.developer.shard))
    assert await count_rows(db_pool, user_ids) + left == 21
    await ingest_once(redis, db_pool)
    await assert_totals(db_pool, expected, [account], [agent])
