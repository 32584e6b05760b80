"""Usage per API key, trials per agent, playground session keys in the key listing, and
logging out everywhere: over the API, on real Postgres and Redis."""

from __future__ import annotations

import asyncpg
import httpx
import redis.asyncio as redis_asyncio

from common import keyspace
from control_plane.auth.principal import Principal, UserType
from control_plane.developers import session_keys
from tests.control_plane.api_client import bearer, register
from tests.control_plane.developers.support import control_state, insert_calls
from tests.factories import make_agent, shard_of


async def _developer(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    body = await register(client, "developer")
    return bearer(body["access_token"]), body["user"]["id"]


async def test_usage_is_broken_down_per_api_key(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    auth, user_id = await _developer(client)
    key = (await client.post("/api/v1/developers/keys", json={"name": "server"},
                             headers=auth)).json()  # fmt: skip
    agent = await make_agent(db_pool)
    await insert_calls(db_pool, user_id=user_id, agent_id=agent.agent_id, count=3,
                       api_key_id=key["id"])  # fmt: skip
    await insert_calls(db_pool, user_id=user_id, agent_id=agent.agent_id, count=1, units=2)
    report = (await client.get("/api/v1/developers/usage", headers=auth)).json()
    first, second = report["by_key"]
    assert first["key_id"] == key["id"]
    assert first["key_name"] == "server"
    assert first["key_prefix"] == key["prefix"]
    assert first["calls"] == 3
    assert first["units"] == 3
    assert second["key_name"] is None  # a key that is not (or no longer) the caller's
    assert second["units"] == 2
    assert sum(row["calls"] for row in report["by_key"]) == report["totals"]["calls"]


async def test_trials_show_the_gateways_live_counters(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    auth, user_id = await _developer(client)
    shard = await shard_of(db_pool, user_id)
    tried, other = await make_agent(db_pool), await make_agent(db_pool)
    await db_pool.execute(
        "INSERT INTO trial_usage (user_id, agent_id, calls_used) VALUES ($1, $2, 1), ($1, $3, 3)",
        user_id, tried.agent_id, other.agent_id,
    )  # fmt: skip
    await redis_client.hset(keyspace.trials(shard, user_id), tried.agent_id, 2)  # live, newer
    trials = (await client.get("/api/v1/developers/trials", headers=auth)).json()
    assert trials["trial_calls"] == 3
    assert [(row["agent_id"], row["used"], row["remaining"]) for row in trials["agents"]] == [
        (other.agent_id, 3, 0), (tried.agent_id, 2, 1),
    ]  # fmt: skip


async def test_playground_keys_are_listed_apart_and_do_not_count_against_the_cap(
    client: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
    redis_client: redis_asyncio.Redis,
    control_env: dict[str, str],
) -> None:
    auth, user_id = await _developer(client)
    shard = await shard_of(db_pool, user_id)
    state = control_state(control_env, db_pool, redis_client)
    principal = Principal(user_id, UserType.DEVELOPER, None, shard)
    minted = await session_keys.current(state, principal, ttl_s=600)
    again = await session_keys.current(state, principal, ttl_s=600)
    assert again.key_id == minted.key_id  # one per developer, reused
    everything = (await client.get("/api/v1/developers/keys", headers=auth)).json()["keys"]
    [listed] = everything
    assert listed["scope"] == "playground"
    assert listed["expires_at"] is not None
    own = await client.get("/api/v1/developers/keys?scope=api", headers=auth)
    assert own.json()["keys"] == []
    profile = (await client.get("/api/v1/developers/me", headers=auth)).json()
    assert profile["active_keys"] == 0
    assert await session_keys.revoke_for_user(state, principal) == 1
    record = await redis_client.hget(
        keyspace.api_key_record(shard, await db_pool.fetchval(
            "SELECT trim(key_hash) FROM api_keys WHERE id = $1", minted.key_id)), "status",
    )  # fmt: skip
    assert record == b"revoked"


async def test_log_out_everywhere_revokes_every_refresh_token(client: httpx.AsyncClient) -> None:
    body = await register(client, "developer")
    second = await client.post(
        "/api/v1/auth/login", json={"email": body["user"]["email"], "password": "correct horse 1"}
    )
    assert second.status_code == 200
    auth = bearer(body["access_token"])
    assert (await client.post("/api/v1/auth/logout-all", headers=auth)).status_code == 204
    for token in (body["refresh_token"], second.json()["refresh_token"]):
        refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert refreshed.status_code == 401
