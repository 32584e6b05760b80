"""Fixtures for the worker's tests: a Redis client and the Lua scripts on the session's Redis,
NOT flushed (a test that needs an empty Redis asks for the root `redis_client` fixture), and a
`Producer` that makes real usage events through the gateway's own `Admitter`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common.redis_store import LuaScripts, create_redis
from tests.conftest import Servers
from tests.control_plane.helpers import Producer


@pytest_asyncio.fixture(scope="session")
async def redis(servers: Servers) -> AsyncIterator[redis_asyncio.Redis]:
    client = create_redis(servers.redis_url, socket_timeout_s=5.0)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def scripts(redis: redis_asyncio.Redis) -> LuaScripts:
    return LuaScripts(redis)


@pytest_asyncio.fixture(scope="session")
async def producer(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, scripts: LuaScripts
) -> Producer:
    return Producer(db_pool, redis, scripts)
