"""The billing rule for a client that leaves, through MCP: an MCP client that hangs up on a
`tools/call` before the provider answered (JSON or with progress) is not billed, the call is
logged `cancelled`, and the gateway stops waiting for the provider at once, exactly as for a
chat call (gateway/disconnect.py, shared by every edge)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as redis_asyncio

from common.tool_names import tool_name
from tests.gateway.helpers import make_caller, quota_units, wait_for_events
from tests.gateway.mcp.helpers import open_session


@pytest.mark.parametrize("progress", [False, True])
async def test_a_client_that_hangs_up_before_the_answer_is_not_billed(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, progress: bool
) -> None:
    caller = await make_caller(db_pool, quota=5, tier="paid", trials_used=3)
    async with httpx.AsyncClient(timeout=30) as http:
        session = await open_session(http, gateway_url, caller.key.plaintext)
    provider_s = 2.5  # under the test gateway's 3 s upstream timeout
    params: dict[str, object] = {
        "name": tool_name("test agent", caller.agent.agent_id),
        "arguments": {"prompt": f"[[mock latency_ms={int(provider_s * 1000)}]]"},
    }
    if progress:
        params["_meta"] = {"progressToken": 1}
    body = orjson.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params})
    host, port = gateway_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /mcp HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\n"
        + f"X-AgentLink-Key: {caller.key.plaintext}\r\nMcp-Session-Id: {session}\r\n".encode()
        + f"X-Request-ID: mcp-gone\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    deadline = time.monotonic() + 10
    while await quota_units(redis, caller) != 4:  # admitted: one unit reserved
        assert time.monotonic() < deadline, "the call was never admitted"
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()
    left_at = time.monotonic()
    [event] = await wait_for_events(redis, caller, 1, timeout_s=provider_s)
    assert time.monotonic() - left_at < provider_s * 0.8  # settled well before the answer
    assert (event["billable"], event["status"]) == ("0", "cancelled")
    assert event["request_id"] == "mcp-gone"
    assert await quota_units(redis, caller) == 5
