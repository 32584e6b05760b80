"""The gateway's /mcp through the official MCP client: the handshake, the key in either
header, tools/list from the developer's toolbox (price in each description), and the
protocol's failure answers (bad key, revoked key, no session, someone else's session, bad
framing, oversized body) as JSON-RPC errors with a 4xx, never a 5xx."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from common.tool_names import agent_id_of, tool_name
from tests.control_plane.api_client import bearer, register
from tests.factories import add_to_toolbox, make_agent, make_developer, make_key
from tests.gateway.mcp.helpers import LATEST, mcp_client, only_mcp_error, open_session, raw_post


async def test_the_client_lists_the_toolbox_agents_then_marketplace_search(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    developer = await make_developer(db_pool)
    key = await make_key(db_pool, developer)
    reviewer = await make_agent(
        db_pool, name="Contract Reviewer", price=Decimal("0.05"),
        description="Reads a contract and lists its risky clauses.",
    )  # fmt: skip
    haiku = await make_agent(db_pool, name="Haiku / Poet!", description="")
    retired = await make_agent(db_pool, name="Retired", status="inactive")
    await make_agent(db_pool, name="Not chosen")
    await add_to_toolbox(db_pool, developer, reviewer, retired, haiku)

    async with mcp_client(gateway_url, key.plaintext) as client:
        assert client.protocol_version == LATEST
        assert client.server_info is not None
        assert client.server_info.name == "agentlink"
        listed = (await client.list_tools()).tools

    names = [tool.name for tool in listed]
    assert names == [tool_name("Contract Reviewer", reviewer.agent_id),
                     tool_name("Haiku / Poet!", haiku.agent_id), "marketplace_search"]  # fmt: skip
    assert names[1].startswith("haiku_poet_")
    assert [agent_id_of(name) for name in names] == [reviewer.agent_id, haiku.agent_id, None]
    first = listed[0]
    assert first.title == "Contract Reviewer"
    assert first.description is not None
    assert first.description.startswith("Reads a contract and lists its risky clauses.")
    assert "$0.05 per call (5 quota units)" in first.description
    assert "first 3 calls of this agent are free" in first.description
    assert listed[1].description is not None
    assert listed[1].description.startswith("Price: $0.01 per call (1 quota unit)")
    assert first.input_schema["required"] == ["prompt"]
    assert set(first.input_schema["properties"]) == {"prompt", "messages"}
    assert listed[2].input_schema["required"] == ["query"]


async def test_the_key_may_come_as_x_agentlink_key_and_an_empty_toolbox_lists_search(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    developer = await make_developer(db_pool)
    key = await make_key(db_pool, developer)
    async with mcp_client(gateway_url, key.plaintext, bearer=False, mode="legacy") as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["marketplace_search"]
        await client.session.send_ping()


@pytest.mark.parametrize("key", ["ak_" + "x" * 32, "not-a-key"])
async def test_a_bad_key_fails_the_handshake_with_a_readable_error(
    gateway_url: str, key: str
) -> None:
    try:
        async with mcp_client(gateway_url, key):
            pytest.fail("the handshake succeeded")
    except BaseException as raised:  # the SDK raises it inside an exception group
        error = only_mcp_error(raised)
    assert error.code == -32001
    assert "API key" in error.message
    assert error.data == {"code": "40103", "status": 401}


async def test_a_revoked_key_fails_the_next_request_of_an_open_session(
    gateway_url: str, control_url: str, db_pool: asyncpg.Pool
) -> None:
    """Property 12 through MCP: the toolbox and the key are made and revoked through the
    control plane's API; the session open before the revocation fails on its next request."""
    agent = await make_agent(db_pool, name="Summarizer")
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as control:
        auth = bearer((await register(control, "developer"))["access_token"])
        created = await control.post("/api/v1/developers/keys", json={"name": "mcp"}, headers=auth)
        assert created.status_code == 201, created.text
        added = await control.put(f"/api/v1/developers/toolbox/{agent.agent_id}", headers=auth)
        assert added.status_code == 200, added.text
        assert added.json()["agents"][0]["tool"] == tool_name("Summarizer", agent.agent_id)
        async with mcp_client(gateway_url, created.json()["key"]) as client:
            listed = [tool.name for tool in (await client.list_tools()).tools]
            assert listed == [tool_name("Summarizer", agent.agent_id), "marketplace_search"]
            revoked = await control.delete(
                f"/api/v1/developers/keys/{created.json()['id']}", headers=auth
            )
            assert revoked.status_code == 204
            with pytest.raises(MCPError) as raised:
                await client.list_tools()
    assert raised.value.code == -32001


async def test_requests_outside_a_session_of_this_key_are_refused(
    gateway_url: str, db_pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    developer = await make_developer(db_pool)
    key, other = await make_key(db_pool, developer), await make_key(db_pool, developer)
    session = await open_session(http, gateway_url, key.plaintext)
    listing = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}

    ok = await raw_post(http, gateway_url, key.plaintext, listing, session=session)
    assert ok.status_code == 200
    assert ok.json()["id"] == 7
    assert ok.json()["result"]["tools"][-1]["name"] == "marketplace_search"

    missing = await raw_post(http, gateway_url, key.plaintext, listing)
    assert missing.status_code == 400
    assert "initialize" in missing.json()["error"]["message"]
    foreign = await raw_post(http, gateway_url, other.plaintext, listing, session=session)
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == -32600
    forged = await raw_post(http, gateway_url, key.plaintext, listing, session=session + "x")
    assert forged.status_code == 404
    wrong_version = await raw_post(http, gateway_url, key.plaintext, listing, session=session,
                                   headers={"MCP-Protocol-Version": "1999-01-01"})  # fmt: skip
    assert wrong_version.status_code == 400

    notified = await raw_post(
        http, gateway_url, key.plaintext,
        {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=session,
    )  # fmt: skip
    assert notified.status_code == 202
    assert notified.content == b""
    unknown = await raw_post(http, gateway_url, key.plaintext,
                             {"jsonrpc": "2.0", "id": "u", "method": "resources/list"},
                             session=session)  # fmt: skip
    assert unknown.status_code == 200
    assert unknown.json()["error"]["code"] == -32601
    assert unknown.json()["id"] == "u"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, -32700),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', 400, -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}', 400, -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', 400, -32600),
        (b"", 400, -32700),
    ],
)
async def test_malformed_messages_get_json_rpc_errors(
    gateway_url: str, db_pool: asyncpg.Pool, http: httpx.AsyncClient,
    *, body: bytes, status: int, code: int,
) -> None:  # fmt: skip
    key = await make_key(db_pool, await make_developer(db_pool))
    session = await open_session(http, gateway_url, key.plaintext)
    response = await raw_post(http, gateway_url, key.plaintext, body, session=session)
    assert response.status_code == status
    assert response.json()["jsonrpc"] == "2.0"
    assert response.json()["error"]["code"] == code


async def test_an_oversized_body_and_other_methods_are_refused_cleanly(
    gateway_url: str, db_pool: asyncpg.Pool, http: httpx.AsyncClient
) -> None:
    key = await make_key(db_pool, await make_developer(db_pool))
    huge = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"a" * 2_000_000
    response = await raw_post(http, gateway_url, key.plaintext, huge + b'"}}')
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32003
    assert response.json()["error"]["data"]["code"] == "41301"

    no_key = await raw_post(http, gateway_url, None, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["data"]["code"] == "40103"
    for method in ("GET", "DELETE"):
        other = await http.request(method, f"{gateway_url}/mcp",
                                   headers={"X-AgentLink-Key": key.plaintext})  # fmt: skip
        assert other.status_code == 405
        assert other.headers["allow"] == "POST"
