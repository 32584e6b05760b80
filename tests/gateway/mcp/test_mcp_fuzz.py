"""No input answers a 5xx on /mcp: any JSON value as the message, its params, a tool's name or
its arguments gets a JSON-RPC answer (a result, an isError result or an error) with a status
below 500, and the gateway goes on serving."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.tool_names import tool_name
from tests.gateway.helpers import make_caller
from tests.gateway.mcp.helpers import open_session

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
_METHODS = st.sampled_from(["tools/call", "tools/list", "ping", "initialize", "x"]) | st.text()
_ARGUMENTS = _JSON | st.fixed_dictionaries(
    {"prompt": _JSON}, optional={"messages": _JSON, "limit": _JSON, "query": _JSON}
)


async def test_no_message_answers_a_5xx(gateway_url: str, db_pool: asyncpg.Pool) -> None:
    caller = await make_caller(db_pool, quota=10_000, tier="paid")
    async with httpx.AsyncClient(timeout=30) as http:
        session = await open_session(http, gateway_url, caller.key.plaintext)
    headers = {"Accept": "application/json, text/event-stream", "Mcp-Session-Id": session,
               "X-AgentLink-Key": caller.key.plaintext}  # fmt: skip
    agent_tool = tool_name("test agent", caller.agent.agent_id)
    names = st.sampled_from([agent_tool, "marketplace_search"]) | st.text(max_size=140)
    messages = st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "id": _JSON, "method": _METHODS, "params": _JSON}
    ) | st.fixed_dictionaries({
        "jsonrpc": st.just("2.0"), "id": st.integers(0, 9), "method": st.just("tools/call"),
        "params": st.fixed_dictionaries({"name": names | _JSON, "arguments": _ARGUMENTS}),
    })  # fmt: skip

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message=messages)
    def check(message: dict[str, Any]) -> None:
        body = orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS)
        with httpx.Client(timeout=10) as client:
            response = client.post(f"{gateway_url}/mcp", content=body, headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code == 202:
            return
        answer = response.text
        if response.headers["content-type"].startswith("text/event-stream"):
            answer = [e for e in answer.split("\n\n") if e][-1].split("data: ", 1)[1]
        parsed = orjson.loads(answer)
        assert parsed["jsonrpc"] == "2.0"
        assert ("result" in parsed) != ("error" in parsed)

    await asyncio.to_thread(check)
