"""The gateway's routes that read Postgres, with Postgres down: each answers a clean 503
`50302` in its own dialect (the error envelope; a JSON-RPC error or an error tool result on
/mcp), never an unhandled 500 `50001`, and no secret (the agent's prompt, the key) in the body.
Admission and the key records are Redis's: a key whose record is warm still gets that far."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from devstack.servers import free_port
from tests.gateway.helpers import Caller, assert_error, chat, make_caller
from tests.gateway.mcp.helpers import open_session, raw_post
from tests.processes import Servers, gateway_env, serve_gateway

SECRET = "SECRET-PROMPT-MARKER"


@pytest.fixture(scope="module")
def database_down_url(servers: Servers, mock_provider_url: str) -> Iterator[str]:
    """A gateway whose Postgres does not answer (nothing listens on its port)."""
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    with serve_gateway(gateway_env(unreachable, servers.redis_url, mock_provider_url)) as url:
        yield url


@pytest.fixture(scope="module")
def database_hangs_up_url(servers: Servers, mock_provider_url: str) -> Iterator[str]:
    """A gateway whose Postgres accepts and hangs up at once (as one restarting may): asyncpg
    raises its own ConnectionDoesNotExistError there, not an OSError."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the module is done
            connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    hangs_up = f"postgresql://nobody@127.0.0.1:{port}/none?sslmode=disable"
    env = gateway_env(hangs_up, servers.redis_url, mock_provider_url)
    try:
        with serve_gateway(env) as url:
            yield url
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        listener.close()
        thread.join(5)


@pytest.fixture(params=["database_down_url", "database_hangs_up_url"])
def down_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


async def warm_caller(gateway_url: str, db_pool: asyncpg.Pool) -> Caller:
    """A caller whose key record the healthy gateway has loaded into Redis."""
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient(timeout=30) as http:
        warmed = await http.get(
            f"{gateway_url}/proxy/v1/agents/{caller.agent.agent_id}/models",
            headers={"Authorization": f"Bearer {caller.key.plaintext}"},
        )
    assert warmed.status_code == 200, warmed.text
    return caller


def assert_clean(response: httpx.Response, caller: Caller) -> None:
    for text in (SECRET, caller.key.plaintext, "asyncpg", "Traceback"):
        assert text not in response.text


async def test_the_models_routes_are_a_503_when_postgres_is_down(
    gateway_url: str, down_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await warm_caller(gateway_url, db_pool)
    agent = caller.agent.agent_id
    async with httpx.AsyncClient(timeout=30) as http:
        for path in ("/models", f"/models/{agent}"):
            response = await http.get(
                f"{down_url}/proxy/v1/agents/{agent}{path}",
                headers={"Authorization": f"Bearer {caller.key.plaintext}"},
            )
            assert_error(response, 503, "50302")
            assert_clean(response, caller)


async def test_a_cold_key_is_a_503_when_postgres_is_down(
    down_url: str, db_pool: asyncpg.Pool
) -> None:
    """The key's record is not in Redis and cannot be loaded: 503, not 'invalid key'."""
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(
            f"{down_url}/proxy/v1/agents/{caller.agent.agent_id}/models",
            headers={"Authorization": f"Bearer {caller.key.plaintext}"},
        )
    assert_error(response, 503, "50302")
    assert_clean(response, caller)


async def test_a_chat_call_of_a_cold_key_is_a_503_when_postgres_is_down(
    down_url: str, db_pool: asyncpg.Pool
) -> None:
    """Admission misses the key's record and cannot load it: 503 before any byte, JSON and
    stream, the prompt nowhere in the body."""
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient(timeout=30) as http:
        for stream in (False, True):
            response = await chat(http, down_url, caller, stream=stream)
            assert_error(response, 503, "50302")
            assert_clean(response, caller)


async def test_mcp_tools_list_is_a_503_when_postgres_is_down(
    gateway_url: str, down_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await warm_caller(gateway_url, db_pool)
    key = caller.key.plaintext
    async with httpx.AsyncClient(timeout=30) as http:
        session = await open_session(http, down_url, key)
        body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        response = await raw_post(http, down_url, key, body, session=session)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["data"] == {"code": "50302", "status": 503}
    assert error["message"]
    assert_clean(response, caller)


async def test_marketplace_search_is_an_error_result_when_postgres_is_down(
    gateway_url: str, down_url: str, db_pool: asyncpg.Pool
) -> None:
    """A tool's failure is its result (MCP): `isError`, the 50302 message in the text."""
    caller = await warm_caller(gateway_url, db_pool)
    key = caller.key.plaintext
    async with httpx.AsyncClient(timeout=30) as http:
        session = await open_session(http, down_url, key)
        search = {"name": "marketplace_search", "arguments": {"query": "contracts"}}
        body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": search}
        response = await raw_post(
            http, down_url, key, body, session=session,
            headers={"Accept": "application/json"},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["isError"] is True
    assert result["_meta"]["agentlink/error"] == {"code": "50302", "status": 503}
    assert "50302" in result["content"][0]["text"]
    assert_clean(response, caller)
