"""The write-through to the gateway's Redis record when things fail: Redis down rolls the
change back (503 `50302`, nothing committed); a commit that fails after Redis was written
drops the Redis record, so the gateway reloads the truth from Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from devstack.servers import free_port
from tests.control_plane.agents.helpers import create_agent, creator_headers
from tests.control_plane.api_client import assert_error
from tests.factories import agent_status
from tests.processes import serve_api

AGENTS = "/api/v1/agents"


@pytest.fixture(scope="module")
def no_redis_control_url(control_env: dict[str, str]) -> Iterator[str]:
    """A control plane whose Redis is a closed port (Postgres answers for token checks)."""
    env = {**control_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "REDIS_SOCKET_TIMEOUT_S": "0.5"}  # fmt: skip
    with serve_api(env) as url:
        yield url


async def test_with_redis_down_nothing_commits(
    client: httpx.AsyncClient, no_redis_control_url: str, db_pool: asyncpg.Pool
) -> None:
    headers = await creator_headers(client)
    agent_id = (await create_agent(client, headers))["id"]
    async with httpx.AsyncClient(base_url=no_redis_control_url) as broken:
        publish = await broken.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
        assert_error(publish, 503, "50302")
        update = await broken.put(f"{AGENTS}/{agent_id}", headers=headers,
                                  json={"price_per_call": "0.02"})  # fmt: skip
        assert_error(update, 503, "50302")
        # Reads need no Redis write and still work.
        assert (await broken.get(f"{AGENTS}/{agent_id}", headers=headers)).status_code == 200
    row = await db_pool.fetchrow("SELECT status, version FROM agents WHERE id = $1", agent_id)
    assert (row["status"], row["version"]) == ("draft", 1)
    versions = await db_pool.fetchval(
        "SELECT count(*) FROM agent_versions WHERE agent_id = $1", agent_id
    )
    assert versions == 1


async def test_a_failed_commit_drops_the_gateway_record(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    headers = await creator_headers(client)
    agent_id = (await create_agent(client, headers))["id"]
    record = keyspace.agent_record(agent_id)
    await redis.hset(record, mapping={"status": "draft", "version": "1", "units": "1"})
    # A deferred constraint trigger fails this agent's publication at COMMIT, after the
    # Redis write has happened: the one failure the transaction cannot take back by itself.
    name = f"test_fail_commit_{uuid.uuid4().hex[:12]}"
    await db_pool.execute(f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = '{agent_id}' AND NEW.status = 'active' THEN
                RAISE EXCEPTION 'commit refused for the test';
            END IF;
            RETURN NEW;
        END $$;
        CREATE CONSTRAINT TRIGGER {name} AFTER UPDATE ON agents
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {name}();
    """)  # fmt: skip
    try:
        response = await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
    finally:
        await db_pool.execute(f"DROP TRIGGER {name} ON agents; DROP FUNCTION {name}();")
    assert_error(response, 500, "50001")
    assert await redis.exists(record) == 0
    status = await agent_status(db_pool, agent_id)
    assert status == "draft"
    # Once the database accepts it, the same call works and the record is written again.
    retry = await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
    assert retry.status_code == 200
    assert await redis.hget(record, "status") == b"active"
