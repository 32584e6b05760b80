"""Test fixtures: a real PostgreSQL and a real Valkey, fresh per test session.

With DATABASE_URL and REDIS_URL both set, the suite uses those servers and starts nothing
(CI with service containers); otherwise it starts its own on free loopback ports in a
temporary folder, the same way `./dev up` does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common.db import create_pool
from common.migrations import migrate_url
from devstack.servers import PostgresServer, ValkeyServer, free_port


@dataclass(frozen=True)
class Servers:
    postgres_url: str
    redis_url: str
    postgres: PostgresServer | None
    valkey: ValkeyServer | None


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
async def redis_client(servers: Servers) -> AsyncIterator[redis_asyncio.Redis]:
    """A client on an emptied Redis: each test starts from no keys."""
    client = redis_asyncio.Redis.from_url(servers.redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


TEST_JWT_SECRET = "test-jwt-secret-at-least-32-characters-long"
TEST_ENCRYPTION_KEYS = "t1:" + "A" * 43 + "="


@pytest.fixture(scope="session")
def control_env(servers: Servers, database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": servers.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "AGENTLINK_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,
        "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": "t1",
        "CORS_ALLOW_ORIGINS": "https://app.agentlink.test",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="session")
def control_url(control_env: dict[str, str]) -> Iterator[str]:
    """One control plane for the session, over real HTTP, with cheap password hashing."""
    from control_plane.app import create_app
    from control_plane.settings import ControlPlaneSettings
    from crypto.passwords import PasswordHashing
    from tests.support import serve

    settings = ControlPlaneSettings.from_env(control_env, api=True)
    cheap = PasswordHashing(time_cost=1, memory_cost=1024, parallelism=1)
    with serve(create_app(settings, passwords=cheap)) as url:
        yield url
