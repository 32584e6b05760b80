"""Feature flags: admin routes over real HTTP, and `is_enabled` (Redis first, Postgres on a
miss) seeing every change at once. Tests use flags of their own, so the seeded ones that
other code reads are never flipped under it."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio

from common.redis_store import create_redis
from control_plane.feature_flags import Flag, UnknownFlagError, is_enabled
from control_plane.feature_flags.service import CACHE_KEY, CACHE_TTL_S
from control_plane.state import ControlPlaneState
from devstack.servers import free_port
from tests.control_plane.admin.support import Admin, audit_rows
from tests.control_plane.api_client import assert_error
from tests.control_plane.conftest import Backend

FF = "/api/v1/admin/feature-flags"


@pytest_asyncio.fixture
async def flag(db_pool: asyncpg.Pool) -> AsyncIterator[str]:
    key = f"test_{uuid.uuid4().hex[:16]}"
    await db_pool.execute(
        "INSERT INTO feature_flags (key, enabled, description) VALUES ($1, false, 'a test')", key
    )
    yield key


async def test_the_seeded_flags_are_listed(client: httpx.AsyncClient, super_admin: Admin) -> None:
    response = await client.get(FF, headers=super_admin.headers)
    assert response.status_code == 200
    flags = {item["key"]: item for item in response.json()["items"]}
    assert {flag.value for flag in Flag} <= set(flags)
    assert flags["enable_crypto_payments"]["enabled"] is False
    assert flags["enable_webhooks"]["enabled"] is True
    assert flags["enable_rag"]["description"]


async def test_a_toggle_is_visible_through_is_enabled_at_once(
    *,
    backend: Backend,
    db_pool: asyncpg.Pool,
    super_admin: Admin,
    flag: str,
) -> None:
    client, redis, control_state = backend.http, backend.redis, backend.state
    assert await is_enabled(control_state, flag) is False  # loads and caches every flag
    assert await redis.hget(CACHE_KEY, flag) == b"0"
    assert 0 < await redis.ttl(CACHE_KEY) <= CACHE_TTL_S

    response = await client.put(f"{FF}/{flag}", headers=super_admin.headers,
                                json={"enabled": True})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is True
    assert response.json()["updated_by"] == super_admin.user_id
    assert await is_enabled(control_state, flag) is True  # the warm cache was written through

    await client.put(f"{FF}/{flag}", headers=super_admin.headers, json={"enabled": False})
    assert await is_enabled(control_state, flag) is False
    assert await db_pool.fetchval("SELECT enabled FROM feature_flags WHERE key = $1", flag) is False

    rows = await audit_rows(db_pool, target_id=flag, action="feature_flag.update")
    changes = [(row["details"]["before"]["enabled"], row["details"]["after"]["enabled"])
               for row in rows]  # fmt: skip
    assert changes == [(False, True), (True, False)]
    assert {str(row["actor_id"]) for row in rows} == {super_admin.user_id}


async def test_is_enabled_reads_redis_first_and_postgres_on_a_miss(
    db_pool: asyncpg.Pool, backend: Backend, flag: str
) -> None:
    redis, control_state = backend.redis, backend.state
    assert await is_enabled(control_state, flag) is False
    # A change behind the API's back (an operator's SQL) is seen once the cache entry goes.
    await db_pool.execute("UPDATE feature_flags SET enabled = true WHERE key = $1", flag)
    assert await is_enabled(control_state, flag) is False  # answered by Redis
    await redis.delete(CACHE_KEY)
    assert await is_enabled(control_state, flag) is True  # answered by Postgres
    assert await redis.hget(CACHE_KEY, flag) == b"1"


async def test_is_enabled_falls_back_to_postgres_when_redis_is_down(
    control_state: ControlPlaneState, flag: str
) -> None:
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    try:
        down = dataclasses.replace(control_state, redis=dead)
        assert await is_enabled(down, flag) is False
        assert await is_enabled(down, Flag.ENABLE_WEBHOOKS) is True
    finally:
        await dead.aclose()


async def test_unknown_flags(
    client: httpx.AsyncClient, control_state: ControlPlaneState, super_admin: Admin
) -> None:
    response = await client.put(f"{FF}/no_such_flag", headers=super_admin.headers,
                                json={"enabled": True})  # fmt: skip
    assert_error(response, 404, "40404")
    with pytest.raises(UnknownFlagError):
        await is_enabled(control_state, "no_such_flag")


async def test_the_body_is_validated(
    client: httpx.AsyncClient, super_admin: Admin, flag: str
) -> None:
    for body in ({"enabled": "yes"}, {}, {"enabled": True, "extra": 1}):
        response = await client.put(f"{FF}/{flag}", headers=super_admin.headers, json=body)
        assert_error(response, 400, "40002")
