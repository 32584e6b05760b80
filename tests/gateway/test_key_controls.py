"""Per-key controls set through the control plane (`PATCH /developers/keys/{id}`) and enforced
by the gateway's one admission step: allowed agents, expiry, a spend cap and a rate limit of
the key's own, exact under concurrent callers on two gateways; a failed call gives its spend
back; a cold key record reloads its controls and its spend; rotation with a grace period."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common import keyspace
from tests.control_plane.api_client import bearer, register
from tests.control_plane.developers.support import insert_calls
from tests.factories import Agent, make_agent, use_trials
from tests.gateway.helpers import assert_error, chat_url

KEYS = "/api/v1/developers/keys"


@dataclass
class Holder:
    """A developer registered through the API, with one key made there."""

    auth: dict[str, str]
    user_id: str
    shard: int
    key_id: str
    key: str
    key_hash: str


@pytest_asyncio.fixture
async def control(control_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=control_url) as client:
        yield client


async def holder(control: httpx.AsyncClient, db: asyncpg.Pool) -> Holder:
    body = await register(control, "developer")
    auth, user_id = bearer(body["access_token"]), body["user"]["id"]
    created = await control.post(KEYS, json={"name": "ci"}, headers=auth)
    assert created.status_code == 201, created.text
    row = await db.fetchrow(
        "SELECT k.key_hash, u.redis_shard FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.id = $1",
        created.json()["id"],
    )
    assert row is not None
    return Holder(auth, user_id, row["redis_shard"], created.json()["id"], created.json()["key"],
                  row["key_hash"].strip())  # fmt: skip


async def paid_agent(db: asyncpg.Pool, holder: Holder) -> Agent:
    """An agent whose free trials this developer has used up: every call costs one unit."""
    agent = await make_agent(db)
    await use_trials(db, holder.user_id, agent.agent_id)
    return agent


async def patch(control: httpx.AsyncClient, holder: Holder, **body: Any) -> dict[str, Any]:
    response = await control.patch(f"{KEYS}/{holder.key_id}", json=body, headers=holder.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def listed(control: httpx.AsyncClient, holder: Holder, key_id: str) -> dict[str, Any]:
    keys = (await control.get(KEYS, headers=holder.auth)).json()["keys"]
    return next(dict(key) for key in keys if key["id"] == key_id)


async def call(
    client: httpx.AsyncClient, gateway: str, key: str, agent: Agent, content: str = "hi"
) -> httpx.Response:
    return await client.post(
        chat_url(gateway, agent.agent_id),
        headers={"X-AgentLink-Key": key},
        json={"messages": [{"role": "user", "content": content}]},
    )


async def test_allowed_agents_and_expiry(
    control: httpx.AsyncClient, db_pool: asyncpg.Pool, gateway_url: str
) -> None:
    owner = await holder(control, db_pool)
    allowed, other = await make_agent(db_pool), await make_agent(db_pool)
    body = await patch(control, owner, allowed_agents=[allowed.agent_id.upper()])
    assert body["allowed_agents"] == [allowed.agent_id]
    async with httpx.AsyncClient() as client:
        assert (await call(client, gateway_url, owner.key, allowed)).status_code == 200
        refused = await call(client, gateway_url, owner.key, other)
        assert_error(refused, 403, "40301")
        assert "not allowed to call this agent" in refused.json()["error"]["message"]
        await patch(control, owner, allowed_agents=None)
        assert (await call(client, gateway_url, owner.key, other)).status_code == 200
        # An expiry in the past: the key stops on the very next request.
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        body = await patch(control, owner, expires_at=past)
        assert body["expires_at"] is not None
        expired = await call(client, gateway_url, owner.key, allowed)
        assert_error(expired, 401, "40103")
        assert "expired" in expired.json()["error"]["message"]
        await patch(control, owner, expires_at=None)
        assert (await call(client, gateway_url, owner.key, allowed)).status_code == 200
    assert (await listed(control, owner, owner.key_id))["expires_at"] is None


async def test_spend_cap_is_exact_under_concurrency_on_two_gateways(
    control: httpx.AsyncClient, db_pool: asyncpg.Pool, gateway_pair: list[str]
) -> None:
    owner = await holder(control, db_pool)
    agent = await paid_agent(db_pool, owner)
    body = await patch(control, owner, spend_cap={"units": 5, "period": "day"})
    assert (body["spend_cap"], body["spend_used"]) == ({"units": 5, "period": "day"}, 0)
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(
            call(client, gateway_pair[index % 2], owner.key, agent) for index in range(16)
        ))  # fmt: skip
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 5, 429: 11}
    for answer in answers:
        if answer.status_code == 429:
            assert_error(answer, 429, "42901")
            assert "spend cap" in answer.json()["error"]["message"]
            assert answer.headers["x-should-retry"] == "false"
    assert (await listed(control, owner, owner.key_id))["spend_used"] == 5
    # The account still has quota: only this key is capped.
    assert int(answers[0].headers.get("x-quota-remaining", "95")) >= 95 - 5


async def test_a_failed_call_gives_its_spend_back(
    control: httpx.AsyncClient, db_pool: asyncpg.Pool, gateway_url: str
) -> None:
    owner = await holder(control, db_pool)
    agent = await paid_agent(db_pool, owner)
    await patch(control, owner, spend_cap={"units": 2, "period": "month"})
    async with httpx.AsyncClient(timeout=30) as client:
        failed = await call(client, gateway_url, owner.key, agent, "hi [[mock status=500]]")
        assert failed.status_code >= 500
        assert (await listed(control, owner, owner.key_id))["spend_used"] == 0
        ok = [await call(client, gateway_url, owner.key, agent) for _ in range(2)]
        assert [answer.status_code for answer in ok] == [200, 200]
        assert_error(await call(client, gateway_url, owner.key, agent), 429, "42901")
    assert (await listed(control, owner, owner.key_id))["spend_used"] == 2


async def test_key_rate_limit_is_exact_under_concurrency_on_two_gateways(
    control: httpx.AsyncClient, db_pool: asyncpg.Pool, gateway_pair: list[str]
) -> None:
    owner = await holder(control, db_pool)
    agent = await make_agent(db_pool)
    await patch(control, owner, rate_limit=4)
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(
            call(client, gateway_pair[index % 2], owner.key, agent) for index in range(9)
        ))  # fmt: skip
    assert Counter(answer.status_code for answer in answers) == {200: 4, 429: 5}
    for answer in answers:
        if answer.status_code == 200:
            assert answer.headers["x-ratelimit-limit"] == "4"
        else:
            assert_error(answer, 429, "42902")
            assert int(answer.headers["retry-after"]) >= 1
    assert (await listed(control, owner, owner.key_id))["rate_limit"] == 4


async def test_a_cold_key_record_reloads_its_controls_and_its_spend(
    control: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
    gateway_url: str,
    redis: redis_asyncio.Redis,
) -> None:
    owner = await holder(control, db_pool)
    agent = await paid_agent(db_pool, owner)
    await patch(control, owner, spend_cap={"units": 3, "period": "total"})
    # Two calls already in call_logs (as the worker wrote them), none in Redis any more.
    await insert_calls(db_pool, user_id=owner.user_id, agent_id=agent.agent_id, count=2,
                       api_key_id=owner.key_id)  # fmt: skip
    await redis.delete(keyspace.api_key_record(owner.shard, owner.key_hash))
    await redis.hdel(keyspace.key_spend(owner.shard), f"{owner.key_id}:t")
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await call(client, gateway_url, owner.key, agent)).status_code == 200
        assert_error(await call(client, gateway_url, owner.key, agent), 429, "42901")


async def test_rotation_keeps_the_controls_and_the_old_key_works_through_the_grace(
    control: httpx.AsyncClient, db_pool: asyncpg.Pool, gateway_url: str
) -> None:
    owner = await holder(control, db_pool)
    agent = await make_agent(db_pool)
    await patch(control, owner, rate_limit=50, allowed_agents=[agent.agent_id])
    rotated = await control.post(
        f"{KEYS}/{owner.key_id}/rotate", json={"grace_seconds": 3600}, headers=owner.auth
    )
    assert rotated.status_code == 201, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new_key, new_id = rotated.json()["key"], rotated.json()["id"]
    new = await listed(control, owner, new_id)
    assert (new["rate_limit"], new["allowed_agents"], new["expires_at"]) == (
        50, [agent.agent_id], None,
    )  # fmt: skip
    old = await listed(control, owner, owner.key_id)
    grace_end = datetime.fromisoformat(old["expires_at"])
    assert timedelta(minutes=59) < grace_end - datetime.now(UTC) <= timedelta(hours=1)
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await call(client, gateway_url, new_key, agent)).status_code == 200
        assert (await call(client, gateway_url, owner.key, agent)).status_code == 200
        # A grace of 0 (rotating the new key now): it stops at once.
        again = await control.post(
            f"{KEYS}/{new_id}/rotate", json={"grace_seconds": 0}, headers=owner.auth
        )
        assert again.status_code == 201
        assert_error(await call(client, gateway_url, new_key, agent), 401, "40103")
        assert (await call(client, gateway_url, again.json()["key"], agent)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"spend_cap": {"units": 0, "period": "day"}},
        {"spend_cap": {"units": 5, "period": "week"}},
        {"rate_limit": 0},
        {"allowed_agents": ["not-a-uuid"]},
        {"allowed_agents": []},
        {"expires_at": "2030-01-01T00:00:00"},  # no timezone
        {"colour": "red"},
    ],
)
async def test_invalid_controls_are_400s(
    control: httpx.AsyncClient, db_pool: asyncpg.Pool, body: dict[str, Any]
) -> None:
    owner = await holder(control, db_pool)
    response = await control.patch(f"{KEYS}/{owner.key_id}", json=body, headers=owner.auth)
    assert_error(response, 400, "40002")


async def test_another_developers_key_is_not_found(
    control: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    owner, other = await holder(control, db_pool), await holder(control, db_pool)
    response = await control.patch(
        f"{KEYS}/{owner.key_id}", json={"rate_limit": 5}, headers=other.auth
    )
    assert_error(response, 404, "40404")
    rotated = await control.post(f"{KEYS}/{owner.key_id}/rotate", json={}, headers=other.auth)
    assert_error(rotated, 404, "40404")


@pytest.mark.parametrize("period", ["day", "month", "total"])
async def test_spend_fields_expire_after_their_bucket(
    control: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
    gateway_url: str,
    redis: redis_asyncio.Redis,
    period: str,
) -> None:
    """kspend:{sS} holds a field per capped key and bucket: a day or month bucket's field
    expires a period and a day after its last change (per-field expiry in the admission
    script, and on a cold load), so old buckets do not pile up; a total cap's field lives as
    long as the key and goes when it is revoked. A give-back to a field already gone leaves
    nothing behind. (The failures are 400s: they do not count against the shared gateway's
    breaker.)"""
    owner = await holder(control, db_pool)
    agent = await paid_agent(db_pool, owner)
    await patch(control, owner, spend_cap={"units": 5, "period": period})
    spend = keyspace.key_spend(owner.shard)
    ttl_ms = {"day": 2 * 86_400_000, "month": 32 * 86_400_000}.get(period)

    async def field_ttl() -> tuple[str, int]:
        fields = [
            f.decode() for f in await redis.hkeys(spend) if f.startswith(owner.key_id.encode())
        ]
        assert len(fields) == 1, fields
        [ttl] = await redis.hpttl(spend, fields[0])
        return fields[0], ttl

    async with httpx.AsyncClient(timeout=30) as client:
        assert (await call(client, gateway_url, owner.key, agent)).status_code == 200
        field, ttl = await field_ttl()
        assert await redis.hget(spend, field) == b"1"
        if ttl_ms is None:
            assert ttl == -1  # no expiry
        else:
            assert ttl_ms - 60_000 < ttl <= ttl_ms
        # A cold key record: the spend reloads from call_logs (0 or 1, as far as the worker
        # got), with its expiry, before a failed call's give-back.
        await redis.delete(keyspace.api_key_record(owner.shard, owner.key_hash))
        await redis.hdel(spend, field)
        failed = await call(client, gateway_url, owner.key, agent, "hi [[mock status=400]]")
        assert failed.status_code == 400
        field, ttl = await field_ttl()
        reloaded = await redis.hget(spend, field)
        assert reloaded in (b"0", b"1")
        assert ttl == -1 if ttl_ms is None else ttl_ms - 60_000 < ttl <= ttl_ms
        # The bucket expired while a call was in flight: its give-back creates no field.
        slow = asyncio.create_task(
            call(client, gateway_url, owner.key, agent, "hi [[mock status=400 latency_ms=1500]]")
        )
        for _ in range(200):
            if await redis.hget(spend, field) != reloaded:
                break
            await asyncio.sleep(0.01)
        await redis.hdel(spend, field)
        assert (await slow).status_code == 400
        assert await redis.hget(spend, field) is None
        assert (await call(client, gateway_url, owner.key, agent)).status_code == 200

    revoked = await control.delete(f"{KEYS}/{owner.key_id}", headers=owner.auth)
    assert revoked.status_code in (200, 204), revoked.text
    if ttl_ms is None:
        assert await redis.hget(spend, f"{owner.key_id}:t") is None
