"""The worker on a Redis Cluster that loses one primary (issue 13): a durable (append-only)
3-primary Valkey cluster with `cluster-require-full-coverage no`, one primary SIGKILLed with
usage events on it not yet ingested. While it is down the worker, even one started then,
keeps ingesting the other primaries' streams; once it is back (its append-only file
replayed) the worker catches up: every event in call_logs exactly once, none lost."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster

from common.redis_store import LuaScripts
from devstack.servers import ValkeyCluster, ValkeyServer, free_port
from tests.control_plane.helpers import Producer, call_log_rows
from tests.control_plane.test_worker_on_cluster import ClusterCalls
from tests.control_plane.test_worker_process import Worker
from tests.factories import Account
from tests.processes import cluster_client_of, serve_valkey_cluster, worker_env
from tests.support import wait_until

# appendfsync everysec: what a primary acknowledged is on disk within about a second.
FSYNC_S = 1.5


@pytest.fixture(scope="module")
def durable_cluster() -> Iterator[ValkeyCluster]:
    """A cluster of its own (a test kills one of its primaries), with append-only files."""
    with serve_valkey_cluster(durable=True) as cluster:
        yield cluster


@pytest_asyncio.fixture
async def durable_redis(durable_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    async with cluster_client_of(durable_cluster) as client:
        yield client


def node_of(cluster: ValkeyCluster, redis: RedisCluster, account: Account) -> ValkeyServer:
    port = redis.get_node_from_key(ClusterCalls.quota_key(account)).port
    return next(node for node in cluster.nodes if node.port == port)


async def rows_of(db: asyncpg.Pool, accounts: list[Account]) -> int:
    return len(await call_log_rows(db, [account.developer.user_id for account in accounts]))


@pytest.mark.timeout(300)
async def test_a_primary_killed_with_events_on_it_loses_none_and_stops_no_other_stream(
    db_pool: asyncpg.Pool,
    durable_redis: RedisCluster,
    durable_cluster: ValkeyCluster,
    database_url: str,
    tmp_path: Path,
) -> None:
    redis = durable_redis
    calls = ClusterCalls(Producer(db_pool, redis, LuaScripts(redis)), redis)  # type: ignore[arg-type]
    await calls.open_accounts()
    # Not the node REDIS_URL names: a client started while that one is down cannot learn
    # the cluster (redis-py discovers the others from it; docs/operations.md).
    victim = next(node for node in durable_cluster.nodes if node.port != durable_cluster.ports[0])
    lost = [a for a in calls.accounts if node_of(durable_cluster, redis, a) is victim]
    kept = [a for a in calls.accounts if a not in lost]
    env = os.environ | worker_env(
        database_url, "", REDIS_URL=durable_cluster.url, REDIS_CLUSTER="true",
        REDIS_SOCKET_TIMEOUT_S="1", USAGE_READ_BLOCK_MS="100", USAGE_CLAIM_INTERVAL_S="0.5",
        USAGE_CLAIM_MIN_IDLE_S="1", WORKER_REAPER_INTERVAL_S="0.5",
    )  # fmt: skip
    workers: list[Worker] = []

    def start_worker() -> Worker:
        worker = Worker(env | {"WORKER_METRICS_PORT": str(free_port())},
                        tmp_path / f"worker-{len(workers) + 1}.log")  # fmt: skip
        workers.append(worker)
        worker.start()
        return worker

    try:
        # A worker ran once (the consumer groups exist on every primary), then stopped.
        first = start_worker()
        await calls.make(per_account=4)
        everything = len(calls.expected.calls)
        await wait_until(lambda: at_least(db_pool, calls.accounts, everything), 60, "phase 1")
        assert first.signal(signal.SIGTERM) == 0

        # Events on every primary, on disk; then one primary dies with its events unread.
        await calls.make(per_account=4)
        await asyncio.sleep(FSYNC_S)
        assert victim.process is not None
        victim.process.kill()
        victim.process.wait(timeout=10)

        # A worker started now ingests the other primaries' events ...
        second = start_worker()
        kept_calls = 8 * len(kept)
        await wait_until(lambda: at_least(db_pool, kept, kept_calls), 60, "the kept primaries")
        assert await rows_of(db_pool, lost) == 4 * len(lost)  # ... and waits for the lost one
        assert second.running()

        # The primary comes back with its append-only file: the worker catches up, once.
        victim.start()
        await wait_until(lambda: healthy(durable_cluster), 30, "the cluster to heal")
        await wait_until(lambda: at_least(db_pool, calls.accounts, 8 * len(calls.accounts)),
                         60, "the lost primary's events")  # fmt: skip
        await calls.assert_written_once(db_pool)
        assert second.signal(signal.SIGTERM) == 0
    finally:
        for worker in workers:
            worker.stop()
            if worker.log.exists():  # shown by pytest only when the test failed
                print(f"--- {worker.log.name}\n{worker.log.read_text()[-6000:]}")


async def at_least(db: asyncpg.Pool, accounts: list[Account], count: int) -> bool:
    return await rows_of(db, accounts) >= count


async def healthy(cluster: ValkeyCluster) -> bool:
    return all(cluster.healthy(node.port) for node in cluster.nodes)
