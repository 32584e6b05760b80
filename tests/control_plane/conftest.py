"""Fixtures for the control plane's tests: the Lua scripts on the session's Redis, a
`Producer` that makes real usage events through the gateway's own `Admitter`, and the state
the API hands its handlers, for calling services in-process."""

from __future__ import annotations

import asyncpg
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common.redis_store import LuaScripts
from control_plane.state import ControlPlaneState
from tests.control_plane.helpers import Producer
from tests.processes import api_state


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
