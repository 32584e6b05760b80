"""The developer's MCP toolbox over real HTTP: add (idempotent, active agents only), list in
the order added with each agent's tool name, remove; the size cap holds under concurrent
additions; developers only."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import httpx

from common.tool_names import tool_name
from tests.control_plane.api_client import assert_error, bearer, register
from tests.factories import make_agent

TOOLBOX = "/api/v1/developers/toolbox"


async def developer(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer((await register(client, "developer"))["access_token"])


async def test_add_list_and_remove(client: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    auth = await developer(client)
    first = await make_agent(db_pool, name="Tax Helper", price=Decimal("0.25"),
                             description="Answers tax questions.")  # fmt: skip
    second = await make_agent(db_pool, name="Second")
    empty = await client.get(TOOLBOX, headers=auth)
    assert empty.status_code == 200
    assert empty.json() == {"agents": [], "limit": 100}

    for agent in (first, second, first):  # adding one that is there changes nothing
        added = await client.put(f"{TOOLBOX}/{agent.agent_id}", headers=auth)
        assert added.status_code == 200, added.text
    listed = (await client.get(TOOLBOX, headers=auth)).json()["agents"]
    assert [a["agent_id"] for a in listed] == [first.agent_id, second.agent_id]
    assert {k: v for k, v in listed[0].items() if k != "added_at"} == {
        "agent_id": first.agent_id, "tool": tool_name("Tax Helper", first.agent_id),
        "name": "Tax Helper", "description": "Answers tax questions.",
        "price_per_call": "0.25", "status": "active",
    }  # fmt: skip

    assert (await client.delete(f"{TOOLBOX}/{first.agent_id}", headers=auth)).status_code == 204
    assert_error(await client.delete(f"{TOOLBOX}/{first.agent_id}", headers=auth), 404, "40404")
    listed = (await client.get(TOOLBOX, headers=auth)).json()["agents"]
    assert [a["agent_id"] for a in listed] == [second.agent_id]


async def test_only_active_agents_can_be_added(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    auth = await developer(client)
    for status in ("draft", "inactive", "suspended"):
        agent = await make_agent(db_pool, status=status)
        assert_error(await client.put(f"{TOOLBOX}/{agent.agent_id}", headers=auth), 404, "40401")
    for raw in ("not-a-uuid", "00000000-0000-4000-8000-000000000000"):
        assert_error(await client.put(f"{TOOLBOX}/{raw}", headers=auth), 404, "40401")
    assert_error(await client.delete(f"{TOOLBOX}/not-a-uuid", headers=auth), 404, "40404")


async def test_the_cap_holds_under_concurrent_additions(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    auth = await developer(client)
    agents = [await make_agent(db_pool) for _ in range(104)]
    for agent in agents[:98]:
        assert (await client.put(f"{TOOLBOX}/{agent.agent_id}", headers=auth)).status_code == 200
    answers = await asyncio.gather(
        *(client.put(f"{TOOLBOX}/{agent.agent_id}", headers=auth) for agent in agents[98:])
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 409, 409, 409, 409]
    for answer in answers:
        if answer.status_code == 409:
            assert_error(answer, 409, "40901")
    assert len((await client.get(TOOLBOX, headers=auth)).json()["agents"]) == 100


async def test_only_developers_have_a_toolbox(client: httpx.AsyncClient) -> None:
    creator = bearer((await register(client, "creator"))["access_token"])
    assert_error(await client.get(TOOLBOX, headers=creator), 403, "40301")
    assert_error(await client.get(TOOLBOX), 401, "40101")
