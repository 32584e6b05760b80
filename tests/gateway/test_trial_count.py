"""Property 25 (Trial Quota Enforcement) with a configured trial count: FREE_TRIAL_CALLS is the
one source of the number. Through a real gateway, the usage worker's ingestion and a Redis
rebuild from Postgres: exactly that many free calls per (developer, agent) pair, Postgres
counts all of them, a rebuilt Redis hands out none again, and the control plane reports the
same limit."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from control_plane.auth.principal import Principal, UserType
from control_plane.developers import service as developers
from control_plane.usage_ingest import ingest_once
from tests.gateway.helpers import (
    assert_error,
    chat,
    make_caller,
    quota_units,
    trials_used,
    wait_for_events,
)
from tests.processes import Servers, api_env, api_state


@pytest.mark.parametrize("count", [5, 7])
async def test_the_configured_trial_count_holds_through_ingestion_and_a_redis_rebuild(
    count: int,
    start_gateway: Callable[..., str],
    *,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    database_url: str,
    servers: Servers,
) -> None:
    gateway_url = start_gateway(FREE_TRIAL_CALLS=str(count))
    caller = await make_caller(db_pool, quota=2)
    async with httpx.AsyncClient() as client:
        remaining = []
        for _ in range(count):
            response = await chat(client, gateway_url, caller)
            assert response.status_code == 200, response.text
            assert response.headers["x-agentlink-units"] == "0"
            remaining.append(int(response.headers["x-agentlink-trials-remaining"]))
        assert remaining == list(range(count - 1, -1, -1))
        assert await trials_used(redis, caller) == count
        # Then the quota, and nothing once it is gone.
        charged = await chat(client, gateway_url, caller)
        assert charged.status_code == 200
        assert charged.headers["x-agentlink-units"] == "1"
        events = await wait_for_events(redis, caller, count + 1)
        assert [event["charge"] for event in events] == ["trial"] * count + ["quota"]

        # The worker writes them; Postgres counts every trial call (no cap of its own).
        await ingest_once(redis, db_pool)
        used = await db_pool.fetchval(
            "SELECT calls_used FROM trial_usage WHERE user_id = $1 AND agent_id = $2",
            caller.developer.user_id,
            caller.agent.agent_id,
        )
        assert used == count

        # Redis loses the developer's live state; the gateway rebuilds it from Postgres.
        shard, user_id = caller.shard, caller.developer.user_id
        await redis.delete(
            keyspace.trials(shard, user_id),
            keyspace.quota(shard, user_id),
            keyspace.quota_adjustments(shard, user_id),
            keyspace.user_record(shard, user_id),
        )
        after = await chat(client, gateway_url, caller)
        assert after.status_code == 200, after.text
        assert after.headers["x-agentlink-units"] == "1"  # quota, not a new trial
        assert after.headers["x-agentlink-trials-remaining"] == "0"
        assert await trials_used(redis, caller) == count
        assert await quota_units(redis, caller) == 0
        assert_error(await chat(client, gateway_url, caller), 429, "42901")

    # The control plane, configured alike, shows developers the same limit.
    env = api_env(database_url, servers.redis_url, FREE_TRIAL_CALLS=str(count))
    state = api_state(env, db_pool, redis)
    principal = Principal(user_id, UserType.DEVELOPER, None, shard)
    trials = await developers.trials(state, principal)
    assert trials.trial_calls == count
    [row] = trials.agents
    assert (row.agent_id, row.used, row.remaining) == (caller.agent.agent_id, count, 0)


async def test_a_lower_setting_never_refunds_trials_already_used(
    start_gateway: Callable[..., str], db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """Postgres' uncapped count (7 used) against a gateway now configured for 3: no trial."""
    gateway_url = start_gateway(FREE_TRIAL_CALLS="3")
    caller = await make_caller(db_pool, quota=1, trials_used=7)
    async with httpx.AsyncClient() as client:
        response = await chat(client, gateway_url, caller)
        assert response.status_code == 200, response.text
        assert response.headers["x-agentlink-units"] == "1"
        assert response.headers["x-agentlink-trials-remaining"] == "0"
