"""Fixtures for the control plane's tests: an HTTP client on the session's control plane, the
Lua scripts on the session's Redis, a `Producer` that makes real usage events through the
gateway's own `Admitter`, and the state the API hands its handlers, for calling services
in-process; and a real 3-primary Valkey cluster for Redis Cluster mode (REDIS_CLUSTER), with
`backend`: a test that takes it runs twice, on the session's single node and on the cluster,
each with a control plane of its own over real HTTP; for the webhook tests (API and pages), a
real signature-checking `receiver` and the worker's delivery job (`deliver`), per module."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster

from common.redis_store import LuaScripts, RedisClient
from control_plane.state import ControlPlaneState
from control_plane.webhooks.delivery import Deliverer
from devstack.servers import ValkeyCluster
from tests.control_plane.helpers import Producer
from tests.control_plane.webhooks.helpers import deliverer
from tests.control_plane.webhooks.receiver import Receiver, receiving
from tests.processes import Env, api_env, api_state, cluster_client_of, serve_api

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


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A webhook receiver over real HTTP that verifies signatures."""
    with receiving() as found:
        yield found


@pytest_asyncio.fixture(scope="module")
async def deliver(db_pool: asyncpg.Pool) -> AsyncIterator[Deliverer]:
    """The worker's webhook delivery job (private addresses allowed, no back-off)."""
    job = deliverer(db_pool)
    yield job
    await job.aclose()


@contextlib.asynccontextmanager
async def emptied_cluster(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    """A cluster client on the emptied cluster."""
    async with cluster_client_of(valkey_cluster) as client:
        await client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        yield client


@pytest_asyncio.fixture
async def cluster_redis(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    """A cluster client on the emptied cluster: each test starts from no keys."""
    async with emptied_cluster(valkey_cluster) as client:
        yield client


@pytest.fixture(scope="session")
def cluster_control_env(database_url: str, valkey_cluster: ValkeyCluster) -> Env:
    return api_env(database_url, valkey_cluster.url, REDIS_CLUSTER="true")


@pytest.fixture(scope="session")
def cluster_control_url(cluster_control_env: Env) -> Iterator[str]:
    """A control plane on the session's Postgres and the Valkey cluster (REDIS_CLUSTER)."""
    with serve_api(cluster_control_env) as url:
        yield url


@dataclass(frozen=True)
class Backend:
    """A control plane over real HTTP (`http`), the Redis it runs on (`redis`, a client of
    the same kind as the app's), and its environment, for in-process calls (`state`)."""

    kind: str
    http: httpx.AsyncClient
    redis: RedisClient
    env: Env
    state: ControlPlaneState


@pytest_asyncio.fixture(params=["single", "cluster"])
async def backend(
    request: pytest.FixtureRequest,
    control_env: Env,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> AsyncIterator[Backend]:
    """The session's single node, then the Valkey cluster (emptied): one test, both modes."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "single":
            url, env, client = request.getfixturevalue("control_url"), control_env, redis
        else:
            url = request.getfixturevalue("cluster_control_url")
            env = request.getfixturevalue("cluster_control_env")
            cluster = request.getfixturevalue("valkey_cluster")
            client = await stack.enter_async_context(emptied_cluster(cluster))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, timeout=CONTROL_CLIENT_TIMEOUT_S)
        )
        yield Backend(request.param, http, client, env, api_state(env, db_pool, client))
