"""Fixtures for the control plane's tests: an HTTP client on the session's control plane, the
Lua scripts on the session's Redis, a `Producer` that makes real usage events through the
gateway's own `Admitter`, and the state the API hands its handlers, for calling services
in-process; and a real 3-primary Valkey cluster for the worker's Redis Cluster mode."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster

from common.redis_store import LuaScripts
from control_plane.state import ControlPlaneState
from devstack.servers import ValkeyCluster, free_port
from tests.control_plane.helpers import Producer
from tests.processes import api_state

CLUSTER_PRIMARIES = 3

# 30 s, not httpx's 5: some properties send ~90 requests at once on a loaded 2-core box.
CONTROL_CLIENT_TIMEOUT_S = 30


@pytest_asyncio.fixture
async def client(control_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the session's control plane, fresh for each test (no cookies kept)."""
    async with httpx.AsyncClient(base_url=control_url, timeout=CONTROL_CLIENT_TIMEOUT_S) as http:
        yield http


@pytest_asyncio.fixture(scope="module")
async def module_client(control_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same, shared by a module's tests: for hypothesis tests, which may not use
    function-scoped fixtures."""
    async with httpx.AsyncClient(base_url=control_url, timeout=CONTROL_CLIENT_TIMEOUT_S) as http:
        yield http


@pytest_asyncio.fixture(scope="session")
async def scripts(redis: redis_asyncio.Redis) -> LuaScripts:
    return LuaScripts(redis)


@pytest_asyncio.fixture(scope="session")
async def producer(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, scripts: LuaScripts
) -> Producer:
    return Producer(db_pool, redis, scripts)


@pytest_asyncio.fixture
async def control_state(
    control_env: dict[str, str], db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> ControlPlaneState:
    """The state an API handler gets, on the session's Postgres and Redis."""
    return api_state(control_env, db_pool, redis)


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[ValkeyCluster]:
    """A real 3-primary Valkey cluster (the same binary, `cluster-enabled yes`)."""
    root = Path(tempfile.mkdtemp(prefix="agentlink-cluster-"))
    nodes = ValkeyCluster(root, [free_port() for _ in range(CLUSTER_PRIMARIES)])
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture
async def cluster_redis(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    """A cluster client on the emptied cluster: each test starts from no keys."""
    client = RedisCluster.from_url(valkey_cluster.url)
    await client.initialize()  # learn the nodes and their slots
    await client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    yield client
    await client.aclose()
