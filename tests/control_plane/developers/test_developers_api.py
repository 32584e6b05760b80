"""The developer's account over real HTTP: profile and quota, API keys (seed properties 2 and
12 at the control plane's side: unique keys in the owner's shard, revocation written through
to the gateway's key record in the same transaction), and usage from call_logs."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from common.domain import UserType
from common.errors import ApiError, ErrorCode
from common.redis_store import create_redis
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import decode_access_token
from control_plane.developers import service, session_keys
from control_plane.developers.schemas import ApiKeyOut, CreateKeyRequest
from crypto.api_keys import is_well_formed_api_key, shard_of_key
from devstack.servers import free_port
from tests.control_plane.api_client import assert_error, bearer, register
from tests.control_plane.conftest import Backend
from tests.control_plane.developers.support import insert_calls
from tests.factories import make_agent, make_developer, make_key, shard_of
from tests.processes import TEST_JWT_SECRET, api_state

KEYS = "/api/v1/developers/keys"
KEY_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at", "revoked", "revoked_at",
              "scope", "expires_at", "spend_cap", "spend_used", "rate_limit",
              "allowed_agents"}  # fmt: skip


async def developer(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    """A developer registered through the API: (auth headers, user id)."""
    body = await register(client, "developer")
    return bearer(body["access_token"]), body["user"]["id"]


async def revoked_at_of(db: asyncpg.Pool, key_id: str) -> datetime | None:
    """When the key was revoked in Postgres (None: it was not)."""
    revoked: datetime | None = await db.fetchval(
        "SELECT revoked_at FROM api_keys WHERE id = $1", key_id
    )
    return revoked


async def create_key(client: httpx.AsyncClient, auth: dict[str, str], name: str = "ci") -> Any:
    response = await client.post(KEYS, json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def key_record(redis: redis_asyncio.Redis, shard: int, key_hash: str) -> dict[str, str]:
    raw: dict[Any, Any] = await redis.hgetall(keyspace.api_key_record(shard, key_hash))
    return {field.decode(): value.decode() for field, value in raw.items()}


# --- profile ---------------------------------------------------------------------------------


async def test_profile_shows_account_and_free_quota(client: httpx.AsyncClient) -> None:
    auth, user_id = await developer(client)
    response = await client.get("/api/v1/developers/me", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == user_id
    assert body["user_type"] == "developer"
    assert body["status"] == "active"
    assert body["rate_tier"] == "free"
    assert body["quota"] == {"total": 0, "used": 0, "free": 100, "remaining": 100}
    assert body["active_keys"] == 0
    assert body["max_active_keys"] == service.MAX_ACTIVE_KEYS
    assert "password_hash" not in response.text


async def test_profile_remaining_is_the_gateways_live_balance(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    auth, user_id = await developer(client)
    await db_pool.execute(
        "UPDATE quotas SET total_quota = 50, used_quota = 20 WHERE user_id = $1", user_id
    )
    body = (await client.get("/api/v1/developers/me", headers=auth)).json()
    assert body["quota"] == {"total": 50, "used": 20, "free": 100, "remaining": 130}
    # Once the gateway holds the live counter, it is the truth (Postgres catches up later).
    live = keyspace.quota(await shard_of(db_pool, user_id), user_id)
    await redis.set(live, 117)
    try:
        body = (await client.get("/api/v1/developers/me", headers=auth)).json()
        assert body["quota"]["remaining"] == 117
    finally:
        await redis.delete(live)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/developers/me"),
        ("GET", KEYS),
        ("POST", KEYS),
        ("DELETE", f"{KEYS}/00000000-0000-0000-0000-000000000000"),
        ("GET", "/api/v1/developers/usage"),
    ],
)
async def test_developer_routes_need_a_developer(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"name": "x"} if method == "POST" else None
    anonymous = await client.request(method, path, json=body)
    assert_error(anonymous, 401, "40101")
    creator = bearer((await register(client, "creator"))["access_token"])
    assert_error(await client.request(method, path, json=body, headers=creator), 403, "40301")


# --- keys ------------------------------------------------------------------------------------


async def test_create_key_returns_the_plaintext_once_and_stores_only_its_hash(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    auth, user_id = await developer(client)
    response = await client.post(KEYS, json={"name": "  production  "}, headers=auth)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    plaintext = created["key"]
    assert is_well_formed_api_key(plaintext)
    assert created["prefix"] == plaintext[:8]
    assert created["name"] == "production"
    key_hash = hashlib.sha256(plaintext.encode()).hexdigest()

    row = await db_pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", created["id"])
    assert row is not None
    assert str(row["user_id"]) == user_id
    assert row["key_hash"] == key_hash
    assert row["key_prefix"] == plaintext[:8]
    assert all(plaintext not in str(value) for value in row.values()), "plaintext stored"

    # The gateway's key record exists before any gateway ever saw the key.
    shard = await shard_of(db_pool, user_id)
    assert await key_record(redis, shard, key_hash) == {
        "status": "ok", "user": user_id, "key": created["id"],
        # no controls yet (PATCH /developers/keys/{id} sets them)
        "expires": "0", "rate": "0", "cap": "0", "cap_period": "", "agents": "",
    }  # fmt: skip

    listing = await client.get(KEYS, headers=auth)
    assert listing.status_code == 200
    assert plaintext not in listing.text
    assert key_hash not in listing.text
    [listed] = listing.json()["keys"]
    assert set(listed) == KEY_FIELDS
    assert listed["id"] == created["id"]
    assert listed["prefix"] == plaintext[:8]
    assert listed["revoked"] is False
    assert listing.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 7}, "name"),
        ({"name": "ok", "scopes": ["all"]}, "body"),
    ],
)
async def test_create_key_validates_the_name(
    client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    auth, _ = await developer(client)
    body = assert_error(await client.post(KEYS, json=payload, headers=auth), 400, "40002")
    assert body["error"]["details"][0]["field"] == field


async def test_property_2_id_uniqueness_of_keys_made_through_the_api(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    """Property 2: ID Uniqueness. Keys created through the API, concurrently and for several
    developers, all have distinct ids, plaintexts and hashes, and every key hashes into its
    owner's shard. The active-key cap holds under the same concurrency."""
    owners = [await developer(client) for _ in range(3)]
    attempts = service.MAX_ACTIVE_KEYS + 5
    responses = await asyncio.gather(*(
        client.post(KEYS, json={"name": f"k{index}"}, headers=auth)
        for auth, _ in owners for index in range(attempts)
    ))  # fmt: skip
    created: list[tuple[str, dict[str, Any]]] = []
    for position, response in enumerate(responses):
        owner = owners[position // attempts][1]
        if response.status_code == 201:
            created.append((owner, response.json()))
        else:
            body = assert_error(response, 409, "40901")
            assert f"{service.MAX_ACTIVE_KEYS} active API keys" in body["error"]["message"]
    for _, user_id in owners:
        assert sum(owner == user_id for owner, _ in created) == service.MAX_ACTIVE_KEYS
    ids = [key["id"] for _, key in created]
    plaintexts = [key["key"] for _, key in created]
    assert len(set(ids)) == len(ids) == 3 * service.MAX_ACTIVE_KEYS
    assert len(set(plaintexts)) == len(plaintexts)
    hashes = await db_pool.fetch("SELECT key_hash FROM api_keys WHERE id = ANY($1::uuid[])", ids)
    assert len({row["key_hash"] for row in hashes}) == len(ids)
    for owner, key in created:
        assert shard_of_key(key["key"]) == await shard_of(db_pool, owner)


async def test_the_key_cap_counts_active_keys_only(client: httpx.AsyncClient) -> None:
    auth, _ = await developer(client)
    first = await create_key(client, auth)
    for _ in range(service.MAX_ACTIVE_KEYS - 1):
        await create_key(client, auth)
    over = await client.post(KEYS, json={"name": "one more"}, headers=auth)
    assert_error(over, 409, "40901")
    assert (await client.delete(f"{KEYS}/{first['id']}", headers=auth)).status_code == 204
    await create_key(client, auth, "replacement")
    profile = (await client.get("/api/v1/developers/me", headers=auth)).json()
    assert profile["active_keys"] == service.MAX_ACTIVE_KEYS


async def test_revoke_writes_the_gateway_record_and_is_idempotent(
    backend: Backend, db_pool: asyncpg.Pool
) -> None:
    """Property 12 at the control plane: the key record says `revoked` once the DELETE
    has answered; the gateway reads it on every request (see test_revocation_e2e.py)."""
    client, redis = backend.http, backend.redis
    auth, user_id = await developer(client)
    created = await create_key(client, auth)
    key_hash = hashlib.sha256(created["key"].encode()).hexdigest()
    response = await client.delete(f"{KEYS}/{created['id']}", headers=auth)
    assert response.status_code == 204
    assert response.content == b""
    record = await key_record(redis, await shard_of(db_pool, user_id), key_hash)
    assert record["status"] == "revoked"
    revoked_at = await revoked_at_of(db_pool, created["id"])
    assert revoked_at is not None

    again = await client.delete(f"{KEYS}/{created['id']}", headers=auth)
    assert again.status_code == 204
    assert await revoked_at_of(db_pool, created["id"]) == revoked_at

    [listed] = (await client.get(KEYS, headers=auth)).json()["keys"]
    assert listed["revoked"] is True
    assert listed["revoked_at"] is not None
    active = (await client.get(KEYS, params={"include_revoked": "false"}, headers=auth)).json()
    assert active["keys"] == []


async def test_the_playground_key_is_minted_and_swept_on_the_users_shard(
    backend: Backend, db_pool: asyncpg.Pool
) -> None:
    """The mint (lock, key record, sealed copy, expiry set) and the worker's sweep, on the
    single node and on the cluster, where the expiry set is in a slot of its own."""
    session = await register(backend.http, "developer")
    principal = decode_access_token(TEST_JWT_SECRET, session["access_token"])
    minted = await session_keys.current(backend.state, principal, ttl_s=3600)
    again = await session_keys.current(backend.state, principal, ttl_s=3600)
    assert again.key_id == minted.key_id  # read back from its sealed copy
    key_hash = hashlib.sha256(minted.plaintext.encode()).hexdigest()
    assert (await key_record(backend.redis, principal.shard, key_hash))["status"] == "ok"

    assert await session_keys.revoke_expired(db_pool, backend.redis) == 0  # not yet due
    later = int(time.time() * 1000) + 2 * 3600 * 1000
    assert await session_keys.revoke_expired(db_pool, backend.redis, now_ms=later) >= 1
    assert (await key_record(backend.redis, principal.shard, key_hash))["status"] == "revoked"
    assert await backend.redis.zscore(keyspace.PLAYGROUND_KEY_EXPIRIES, minted.key_id) is None
    assert await revoked_at_of(db_pool, minted.key_id) is not None


async def test_another_developers_key_is_not_found_and_stays_active(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    owner, _ = await developer(client)
    other, _ = await developer(client)
    created = await create_key(client, owner)
    assert_error(await client.delete(f"{KEYS}/{created['id']}", headers=other), 404, "40404")
    assert await revoked_at_of(db_pool, created["id"]) is None
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "1" * 36):
        assert_error(await client.delete(f"{KEYS}/{bad}", headers=owner), 404, "40404")


async def test_key_listing_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    auth, _ = await developer(client)
    made = [await create_key(client, auth, f"k{index}") for index in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):  # bounded: a cursor bug must fail, not loop
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(KEYS, params=params, headers=auth)).json()
        seen += [key["id"] for key in page["keys"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [key["id"] for key in reversed(made)]  # newest first, each once
    bad = await client.get(KEYS, params={"cursor": "bm9wZQ"}, headers=auth)
    assert assert_error(bad, 400, "40002")["error"]["details"][0]["field"] == "cursor"
    assert_error(await client.get(KEYS, params={"limit": "101"}, headers=auth), 400, "40002")


async def test_key_changes_fail_closed_when_redis_is_down(
    control_env: dict[str, str], db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """The key record is written before the transaction commits: with Redis unreachable,
    neither a creation nor a revocation is committed (503 50302), so Postgres never says
    "revoked" while a gateway still admits the key, or holds a key no gateway knows."""
    dev = await make_developer(db_pool)
    principal = Principal(dev.user_id, UserType.DEVELOPER, None, dev.shard)
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    try:
        broken = api_state(control_env, db_pool, dead)
        with pytest.raises(ApiError) as raised:
            await service.create_key(broken, principal, CreateKeyRequest("x"))
        assert raised.value.code is ErrorCode.STORAGE_UNAVAILABLE
        assert await db_pool.fetchval(
            "SELECT count(*) FROM api_keys WHERE user_id = $1", dev.user_id
        ) == 0  # fmt: skip

        key = await make_key(db_pool, dev)
        with pytest.raises(ApiError) as raised:
            await service.revoke_key(broken, principal, key.key_id)
        assert raised.value.code is ErrorCode.STORAGE_UNAVAILABLE
        assert await revoked_at_of(db_pool, key.key_id) is None
    finally:
        await dead.aclose()
    working = api_state(control_env, db_pool, redis)
    await service.revoke_key(working, principal, key.key_id)
    assert (await key_record(redis, dev.shard, key.key_hash))["status"] == "revoked"


# --- usage -----------------------------------------------------------------------------------


async def test_usage_totals_and_breakdowns_from_call_logs(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    auth, user_id = await developer(client)
    other_auth, other_id = await developer(client)
    first, second = await make_agent(db_pool), await make_agent(db_pool)
    await insert_calls(db_pool, user_id=user_id, agent_id=first.agent_id, count=3)
    await insert_calls(db_pool, user_id=user_id, agent_id=first.agent_id, count=2,
                       billable=False, status="error")  # fmt: skip
    await insert_calls(db_pool, user_id=user_id, agent_id=second.agent_id, count=2, units=4,
                       cost=Decimal("0.035"))  # fmt: skip
    await insert_calls(db_pool, user_id=other_id, agent_id=first.agent_id, count=7)

    response = await client.get("/api/v1/developers/usage", headers=auth)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["totals"] == {
        "calls": 7, "billable_calls": 5, "successful_calls": 5, "failed_calls": 2,
        "units": 11, "cost_usd": "0.1", "input_tokens": 70, "output_tokens": 140,
    }  # fmt: skip
    by_agent = {row["agent_id"]: row for row in report["by_agent"]}
    assert by_agent[first.agent_id]["calls"] == 5
    assert by_agent[first.agent_id]["billable_calls"] == 3
    assert by_agent[first.agent_id]["agent_name"] == "test agent"
    assert by_agent[second.agent_id]["units"] == 8
    assert by_agent[second.agent_id]["cost_usd"] == "0.07"
    assert [row["agent_id"] for row in report["by_agent"]] == [first.agent_id, second.agent_id]
    # Every UTC day of the default 30-day range, zeros included, adding up to the totals.
    start = datetime.fromisoformat(report["from"])
    end = datetime.fromisoformat(report["to"])
    assert end - start == timedelta(days=30)
    assert len(report["by_day"]) == 31
    assert report["by_day"][-1]["date"] == end.astimezone(UTC).date().isoformat()
    assert sum(day["calls"] for day in report["by_day"]) == 7
    assert sum(day["units"] for day in report["by_day"]) == 11

    other = (await client.get("/api/v1/developers/usage", headers=other_auth)).json()
    assert other["totals"]["calls"] == 7
    assert other["totals"]["billable_calls"] == 7


async def test_usage_respects_the_requested_range(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    auth, user_id = await developer(client)
    agent = await make_agent(db_pool)
    now = await db_pool.fetchval("SELECT now()")
    await insert_calls(db_pool, user_id=user_id, agent_id=agent.agent_id, count=2,
                       created_at=now - timedelta(hours=2))  # fmt: skip
    await insert_calls(db_pool, user_id=user_id, agent_id=agent.agent_id, count=3,
                       created_at=now - timedelta(minutes=5))  # fmt: skip
    params = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat(),
    }
    report = (await client.get("/api/v1/developers/usage", params=params, headers=auth)).json()
    assert report["totals"]["calls"] == 3
    params["from"] = (now - timedelta(hours=3)).isoformat()
    params["to"] = (now - timedelta(hours=1)).isoformat()
    report = (await client.get("/api/v1/developers/usage", params=params, headers=auth)).json()
    assert report["totals"]["calls"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
        ({"from": "2023-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
        ({"from": "2025-01-01T00:00:00"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"agent": "x"}, "body"),
    ],
)
async def test_usage_rejects_bad_ranges(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    auth, _ = await developer(client)
    response = await client.get("/api/v1/developers/usage", params=params, headers=auth)
    assert assert_error(response, 400, "40002")["error"]["details"][0]["field"] == field


def test_key_fields_never_include_secrets() -> None:
    names = {field.encode_name for field in msgspec.structs.fields(ApiKeyOut)}
    assert names == KEY_FIELDS
    assert not any(re.search("hash|secret|key$|plain", name) for name in names)


async def test_rotation_respects_the_active_key_cap(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    """At the cap one rotation goes through (it replaces its key), and the key in its grace
    then counts: neither another rotation, concurrent or not, nor a new key fits until it
    ends; an expired key does not count, and cannot itself be rotated."""
    auth, user_id = await developer(client)
    keys = [await create_key(client, auth, f"k{i}") for i in range(service.MAX_ACTIVE_KEYS)]
    first = await client.post(f"{KEYS}/{keys[0]['id']}/rotate", json={"grace_seconds": 600},
                              headers=auth)  # fmt: skip
    assert first.status_code == 201, first.text
    # Concurrent rotations of the others, of the key in grace and of the new key: all refused.
    targets = [keys[0]["id"], keys[1]["id"], keys[2]["id"], first.json()["id"]]
    refused = await asyncio.gather(*(
        client.post(f"{KEYS}/{key_id}/rotate", json={}, headers=auth) for key_id in targets
    ))  # fmt: skip
    for response in refused:
        body = assert_error(response, 409, "40901")
        assert "grace" in body["error"]["message"]
    assert_error(await client.post(KEYS, json={"name": "one more"}, headers=auth), 409, "40901")
    working = await db_pool.fetchval(
        "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    assert working == service.MAX_ACTIVE_KEYS + 1

    # The grace ends: the old key no longer counts, and an expired key cannot be rotated.
    await db_pool.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
        keys[0]["id"],
    )
    assert_error(await client.post(f"{KEYS}/{keys[0]['id']}/rotate", json={}, headers=auth),
                 409, "40901")  # fmt: skip
    again = await client.post(f"{KEYS}/{keys[1]['id']}/rotate", json={}, headers=auth)
    assert again.status_code == 201, again.text
