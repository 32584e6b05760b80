"""A key with an agent allow-list (PATCH /api/v1/developers/keys/{id}) lists exactly those
agents as tools, without the toolbox or marketplace_search; calling any other agent with it is
an isError result 40301 from admission, and nothing is billed for it."""

from __future__ import annotations

import asyncpg
import httpx

from common.tool_names import tool_name
from tests.control_plane.api_client import bearer, register
from tests.factories import make_agent
from tests.gateway.mcp.helpers import mcp_client, text_of


async def test_a_key_with_an_allow_list_lists_and_calls_only_those_agents(
    gateway_url: str, control_url: str, db_pool: asyncpg.Pool
) -> None:
    first, second = (
        await make_agent(db_pool, name="First"),
        await make_agent(db_pool, name="Second"),
    )
    other = await make_agent(db_pool, name="Other")
    retired = await make_agent(db_pool, name="Retired", status="inactive")
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as control:
        auth = bearer((await register(control, "developer"))["access_token"])
        created = await control.post("/api/v1/developers/keys", json={"name": "mcp"}, headers=auth)
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        added = await control.put(f"/api/v1/developers/toolbox/{other.agent_id}", headers=auth)
        assert added.status_code == 200, added.text
        allowed = [first.agent_id, second.agent_id, retired.agent_id]
        patched = await control.patch(f"/api/v1/developers/keys/{key_id}",
                                      json={"allowed_agents": allowed}, headers=auth)  # fmt: skip
        assert patched.status_code == 200, patched.text
    expected = sorted([(first.agent_id, "First"), (second.agent_id, "Second")])
    async with mcp_client(gateway_url, key) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == [tool_name(name, agent) for agent, name in expected]
        assert not (await client.call_tool(listed[0], {"prompt": "hi"})).is_error
        refused = await client.call_tool(tool_name("Other", other.agent_id), {"prompt": "hi"})
    assert refused.is_error
    assert "40301" in text_of(refused)
