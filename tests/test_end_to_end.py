"""The whole product, as its users meet it, over real HTTP: a creator registers and publishes
an agent through the control plane; a developer registers, creates a key and calls the agent
through the gateway with the official OpenAI SDK; the worker turns the usage into call logs
that the developer sees in their usage and the creator in their agent's totals."""

from __future__ import annotations

import asyncpg
import httpx
import redis.asyncio as redis_asyncio

from control_plane.usage_ingest import ingest_once
from tests.control_plane.agents.helpers import config, publish_agent
from tests.control_plane.api_client import bearer, register
from tests.gateway.helpers import agent_sdk

PROMPT = "You are Captain Haiku. Answer only in haiku. END-TO-END-SECRET"


async def test_creator_publishes_developer_calls_usage_is_accounted(
    gateway_url: str, control_url: str, redis: redis_asyncio.Redis, db_pool: asyncpg.Pool
) -> None:
    async with httpx.AsyncClient(base_url=control_url) as api:
        creator = await register(api, "creator")
        creator_auth = bearer(creator["access_token"])
        agent_id = await publish_agent(
            api, creator_auth, name="Captain Haiku", description="Answers in haiku.",
            category="writing", price_per_call="0.02", config=config(system_prompt=PROMPT),
        )  # fmt: skip

        developer = await register(api, "developer")
        developer_auth = bearer(developer["access_token"])
        key_response = await api.post(
            "/api/v1/developers/keys", headers=developer_auth, json={"name": "e2e"}
        )
        assert key_response.status_code == 201, key_response.text
        api_key = key_response.json()["key"]

    async with agent_sdk(gateway_url, agent_id, api_key) as client:
        answers = []
        for index in range(4):  # three free trials, then one call paid from quota
            reply = await client.chat.completions.create(
                model="ignored", messages=[{"role": "user", "content": f"the sea {index}"}]
            )
            answers.append(reply.choices[0].message.content)
        stream = await client.chat.completions.create(
            model="ignored",
            messages=[{"role": "user", "content": "the moon"}],
            stream=True,
        )
        streamed = "".join(
            [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        )
    assert answers == [f"Mock reply to: the sea {index}" for index in range(4)]
    assert streamed == "Mock reply to: the moon"

    await ingest_once(redis, db_pool)

    async with httpx.AsyncClient(base_url=control_url) as api:
        me = (await api.get("/api/v1/developers/me", headers=developer_auth)).json()
        usage = (await api.get("/api/v1/developers/usage", headers=developer_auth)).json()
        agent = (await api.get(f"/api/v1/agents/{agent_id}", headers=creator_auth)).json()
        keys = (await api.get("/api/v1/developers/keys", headers=developer_auth)).json()["keys"]
    [listed_key] = keys
    assert listed_key["last_used_at"] is not None  # set by the worker from the usage events
    # 3 trials free; the 4th and the stream cost 2 units each (price 0.02, unit 0.01).
    assert me["quota"]["used"] == 4
    assert str(usage).count(agent_id) >= 1
    assert agent["total_calls"] == 5
    rows = await db_pool.fetch(
        "SELECT billable, units, status FROM call_logs WHERE agent_id = $1", agent_id
    )
    assert len(rows) == 5
    assert all(row["billable"] and row["status"] == "success" for row in rows)
    assert sorted(row["units"] for row in rows) == [0, 0, 0, 2, 2]
