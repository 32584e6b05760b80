"""The operational feature flags, flipped by an admin through the control plane's API and
followed by a real gateway (its snapshot is refreshed off the request path):

- `maintenance_mode`: every gateway call answers 503 `50303` with Retry-After, bills and
  reserves nothing, while /healthz, /readyz and /metrics stay up; the control plane is
  read-only except for admins (who turn it back off);
- `enable_trial_mode` off: no free trials, the first call is charged to quota.

(`enable_rag` is covered by tests/test_knowledge_end_to_end.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common import keyspace
from tests.control_plane.api_client import Admin, bearer, register
from tests.gateway.helpers import (
    assert_error,
    chat,
    make_caller,
    quota_units,
    trials_used,
    usage_events,
    wait_for_events,
)

FLAGS = "/api/v1/admin/feature-flags"
# Five refreshes of the test processes' FEATURE_FLAGS_REFRESH_S (tests/processes.py).
FOLLOW_S = 0.5


@pytest_asyncio.fixture
async def api(control_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=control_url, timeout=15) as client:
        yield client


async def _set(api: httpx.AsyncClient, admin: Admin, key: str, enabled: bool) -> None:
    response = await api.put(f"{FLAGS}/{key}", json={"enabled": enabled}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is enabled


async def _restore(
    db: asyncpg.Pool, redis: redis_asyncio.Redis, key: str, *, enabled: bool
) -> None:
    """Whatever the test did, the seeded value is back in Postgres and Redis, and every
    process has followed it before the next test."""
    await db.execute("UPDATE feature_flags SET enabled = $2 WHERE key = $1", key, enabled)
    await redis.hset(keyspace.FEATURE_FLAGS, key, "1" if enabled else "0")
    await asyncio.sleep(FOLLOW_S)


async def _until_status(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], status: int
) -> httpx.Response:
    """Poll a call that bills nothing (the models route) until it answers `status`."""
    deadline = time.monotonic() + 10
    while True:
        response = await client.get(url, headers=headers)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, (status, response.status_code, response.text)
        await asyncio.sleep(0.05)


async def test_maintenance_mode_refuses_calls_and_writes_but_keeps_probes_and_admins(
    *,
    gateway_url: str,
    api: httpx.AsyncClient,
    super_admin: Admin,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    caller = await make_caller(db_pool, quota=5, trials_used=3)
    key = {"X-AgentLink-Key": caller.key.plaintext}
    models = f"{gateway_url}/proxy/v1/agents/{caller.agent.agent_id}/models"
    developer = bearer((await register(api, "developer"))["access_token"])
    async with httpx.AsyncClient() as client:
        assert (await chat(client, gateway_url, caller)).status_code == 200
        try:
            await _set(api, super_admin, "maintenance_mode", True)
            await _until_status(client, models, key, 503)
            for stream in (False, True):
                refused = await chat(client, gateway_url, caller, stream=stream)
                body = assert_error(refused, 503, "50303")
                assert "maintenance" in body["error"]["message"].lower()
                assert refused.headers["retry-after"] == "60"
            for probe in ("/healthz", "/readyz", "/metrics"):
                assert (await client.get(gateway_url + probe)).status_code == 200, probe

            # The control plane: reads and admins yes, other writes no.
            assert (await api.get("/api/v1/developers/keys", headers=developer)).status_code == 200
            write = await api.post(
                "/api/v1/developers/keys", json={"name": "during"}, headers=developer
            )
            assert_error(write, 503, "50303")
            assert write.headers["retry-after"] == "60"
            assert (await api.get("/readyz")).status_code == 200
            assert (await api.get(FLAGS, headers=super_admin.headers)).status_code == 200
            await _set(api, super_admin, "maintenance_mode", False)  # an admin's write goes through
        finally:
            await _restore(db_pool, redis, "maintenance_mode", enabled=False)
        await _until_status(client, models, key, 200)
        assert (await chat(client, gateway_url, caller)).status_code == 200
        created = await api.post("/api/v1/developers/keys", json={"name": "after"},
                                 headers=developer)  # fmt: skip
        assert created.status_code == 201, created.text

    # The refused calls reserved and billed nothing: two calls, two units.
    events = await wait_for_events(redis, caller, 2)
    assert [(e["billable"], e["units"]) for e in events] == [("1", "1"), ("1", "1")]
    assert await quota_units(redis, caller) == 3
    held = await redis.hvals(keyspace.reservations(caller.shard))
    assert [r for r in held if r.startswith(caller.developer.user_id.encode())] == []


async def test_trial_mode_off_charges_quota_from_the_first_call(
    *,
    gateway_url: str,
    api: httpx.AsyncClient,
    super_admin: Admin,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    caller = await make_caller(db_pool, quota=3)
    async with httpx.AsyncClient() as client:
        try:
            await _set(api, super_admin, "enable_trial_mode", False)
            await asyncio.sleep(FOLLOW_S)
            charged = await chat(client, gateway_url, caller)
            assert charged.status_code == 200, charged.text
            assert charged.headers["x-agentlink-units"] == "1"
            assert charged.headers["x-agentlink-trials-remaining"] == "0"
            assert await trials_used(redis, caller) == 0
            await _set(api, super_admin, "enable_trial_mode", True)
        finally:
            await _restore(db_pool, redis, "enable_trial_mode", enabled=True)
        free = await chat(client, gateway_url, caller)
        assert free.headers["x-agentlink-units"] == "0"
        assert free.headers["x-agentlink-trials-remaining"] == "2"
    events = await wait_for_events(redis, caller, 2)
    assert [e["charge"] for e in events] == ["quota", "trial"]
    assert await quota_units(redis, caller) == 2
    assert len(await usage_events(redis, caller)) == 2
