"""Test fixtures: a real PostgreSQL and a real Valkey, fresh per test session (and a real
3-primary Valkey cluster for Redis Cluster mode, started when a test asks for it).

With DATABASE_URL and REDIS_URL both set, the suite uses those servers and starts nothing
(CI with service containers); otherwise it starts its own on free loopback ports in a
temporary folder, the same way `./dev up` does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster

from common.db import create_pool
from common.domain import AdminRole
from common.migrations import migrate_url
from common.redis_store import create_redis
from devstack.servers import PostgresServer, ValkeyCluster, ValkeyServer, free_port
from tests.control_plane.api_client import Admin, admin_session
from tests.processes import (
    Deployment,
    Servers,
    api_env,
    cluster_client_of,
    serve_api,
    serve_gateway,
    serve_mock_provider,
    serve_valkey_cluster,
)
from tests.processes import gateway_env as gateway_env_for


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    external_db, external_redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if external_db and external_redis:
        yield Servers(external_db, external_redis, None, None)
        return
    root = Path(tempfile.mkdtemp(prefix="agentlink-test-"))
    root.chmod(0o755)  # as root, postgres runs as `nobody` and must reach its data folder
    postgres = PostgresServer(root / "postgres", free_port(), durable=False)
    valkey = ValkeyServer(root / "valkey", free_port(), durable=False)
    try:
        postgres.start()
        valkey.start()
        yield Servers(postgres.url, valkey.url, postgres, valkey)
    finally:
        valkey.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


async def create_scratch_database(admin_url: str) -> str:
    """A new empty database on the same server; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest_asyncio.fixture(scope="session")
async def database_url(servers: Servers) -> str:
    """A database with every migration applied, shared by the session."""
    url = await create_scratch_database(servers.postgres_url)
    await migrate_url(url)
    return url


@pytest_asyncio.fixture
async def scratch_database_url(servers: Servers) -> AsyncIterator[str]:
    """An empty database of its own, for tests of the migration runner itself."""
    url = await create_scratch_database(servers.postgres_url)
    yield url
    connection = await asyncpg.connect(servers.postgres_url)
    try:
        name = url.rsplit("/", 1)[1]
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest_asyncio.fixture(scope="session")
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def super_admin(db_pool: asyncpg.Pool) -> Admin:
    """A new super admin; `super_admin.headers` authorise their calls."""
    return await admin_session(db_pool, AdminRole.SUPER_ADMIN)


@pytest_asyncio.fixture
async def redis_client(servers: Servers) -> AsyncIterator[redis_asyncio.Redis]:
    """A client on an emptied Redis: each test starts from no keys."""
    client = redis_asyncio.Redis.from_url(servers.redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def redis(servers: Servers) -> AsyncIterator[redis_asyncio.Redis]:
    """The session's Redis, NOT flushed: the gateways' and the worker's live state is there."""
    client = create_redis(servers.redis_url, socket_timeout_s=5.0)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, for calls to any of the test's servers by full URL."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def mock_provider_url() -> Iterator[str]:
    """One mock LLM provider for the session (tests tell their calls apart by a marker)."""
    with serve_mock_provider() as url:
        yield url


@pytest.fixture(scope="session")
def control_env(servers: Servers, database_url: str) -> dict[str, str]:
    return api_env(database_url, servers.redis_url)


@pytest.fixture(scope="session")
def control_url(control_env: dict[str, str]) -> Iterator[str]:
    """One control plane for the session, over real HTTP, with cheap password hashing."""
    with serve_api(control_env) as url:
        yield url


@pytest.fixture(scope="session")
def gateway_env(servers: Servers, database_url: str, mock_provider_url: str) -> dict[str, str]:
    return gateway_env_for(database_url, servers.redis_url, mock_provider_url)


@pytest.fixture(scope="session")
def gateway_url(gateway_env: dict[str, str]) -> Iterator[str]:
    """One gateway for the session; tests needing other settings use `start_gateway`."""
    with serve_gateway(gateway_env) as url:
        yield url


@pytest.fixture(scope="session")
def gateway_pair(gateway_url: str, gateway_env: dict[str, str]) -> Iterator[list[str]]:
    """Two gateway instances on the session's Postgres and Redis (the session's and one more),
    for what must hold on every instance at once."""
    with serve_gateway(gateway_env) as second:
        yield [gateway_url, second]


@pytest.fixture
def start_gateway(gateway_env: dict[str, str]) -> Iterator[Callable[..., str]]:
    """Start a gateway with some settings overridden; stopped at the end of the test."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: str) -> str:
            return stack.enter_context(serve_gateway({**gateway_env, **overrides}))

        yield start


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[ValkeyCluster]:
    """A real 3-primary Valkey cluster for the session."""
    with serve_valkey_cluster() as nodes:
        yield nodes


@pytest_asyncio.fixture(scope="session")
async def cluster_client(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    """A client of the cluster, NOT flushed (like `redis`: gateways' live state is there)."""
    async with cluster_client_of(valkey_cluster) as client:
        yield client


@pytest.fixture(scope="session")
def cluster_gateway_env(
    gateway_env: dict[str, str], valkey_cluster: ValkeyCluster
) -> dict[str, str]:
    """The gateway's environment on the Valkey cluster instead (REDIS_CLUSTER=true)."""
    return gateway_env | {"REDIS_URL": valkey_cluster.url, "REDIS_CLUSTER": "true"}


@pytest.fixture(scope="module", params=["single", "cluster"])
def deployment(
    request: pytest.FixtureRequest, gateway_env: dict[str, str], redis: redis_asyncio.Redis
) -> Deployment:
    """A test (or a module fixture) that takes it runs once on each (the cluster is started
    only when asked for)."""
    if request.param == "single":
        return Deployment("single", gateway_env, redis)
    env = request.getfixturevalue("cluster_gateway_env")
    return Deployment("cluster", env, request.getfixturevalue("cluster_client"))
