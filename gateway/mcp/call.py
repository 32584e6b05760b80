"""`tools/call`: an agent called through the same pipeline as a chat call.

The tool's arguments become a chat request (its `messages`, then the `prompt` as the last
user turn), validated before admission like any chat body, so a bad call costs nothing.
Then `gateway.proxy.call_agent` runs the call (admission, trial, quota, rate limit, the hidden
prompt, knowledge, provider, leak guard, commit, usage event) with the MCP edge writing the
answer. How our errors map:

- the key unknown or revoked (40103): a JSON-RPC error at 401, as for every other method;
- a tool that is no agent's, or an agent that is not active (40401): JSON-RPC "invalid
  params", the specification's answer to an unknown tool;
- everything else (bad arguments, rate limit, quota, provider down or timed out, our
  storage away): a result with `isError`, the readable message and the code, which the model
  calling the tool can read and act on.
"""

from __future__ import annotations

from typing import Any

from common.asgi import Receive, Scope, Send
from common.db import UNAVAILABLE_ERRORS
from common.errors import ApiError, ErrorCode
from common.tool_names import agent_id_of
from common.validation import invalid
from gateway.call_telemetry import CallTelemetry
from gateway.chat_request import ChatRequest, chat_request_of
from gateway.live_keys import live_key_owner
from gateway.mcp import marketplace, protocol
from gateway.mcp.edge import McpEdge, error_result
from gateway.mcp.protocol import Message, RpcError
from gateway.mcp.tools import MARKETPLACE_SEARCH
from gateway.proxy import call_agent
from gateway.state import GatewayState

ROUTE = "/mcp"
_ROLES = ("user", "assistant")


def unknown_tool(name: str) -> RpcError:
    return RpcError(protocol.INVALID_PARAMS, f"Unknown tool: {name[:128]}")


def chat_of_arguments(arguments: object, *, stream: bool) -> ChatRequest:
    """An agent tool's arguments as a chat request (400 `40002` naming what is wrong)."""
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise invalid("arguments", "must be an object")
    if unknown := sorted(set(arguments) - {"prompt", "messages"}):
        raise invalid(unknown[0], "is not an argument of this tool (prompt, messages)")
    prompt = arguments.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt", "is required: a non-empty string")
    earlier = arguments.get("messages")
    if earlier is None:
        earlier = []
    if not isinstance(earlier, list):
        raise invalid("messages", "must be an array of {role, content}")
    for index, turn in enumerate(earlier):
        where = f"messages[{index}]"
        if not isinstance(turn, dict) or set(turn) != {"role", "content"}:
            raise invalid(where, "must be an object with exactly role and content")
        if turn["role"] not in _ROLES:
            raise invalid(f"{where}.role", "must be user or assistant")
        if not isinstance(turn["content"], str):
            raise invalid(f"{where}.content", "must be a string")
    return chat_request_of(
        {"messages": [*earlier, {"role": "user", "content": prompt}], "stream": stream}
    )


def _progress_token(params: dict[str, Any]) -> protocol.RequestId | None:
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if isinstance(token, bool) or not isinstance(token, str | int):
        return None
    return token


async def call_tool(
    state: GatewayState,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    key_hash: str,
    message: Message,
    headers: list[tuple[bytes, bytes]],
    accepts_sse: bool,
) -> None:
    """Answer one `tools/call` (raises RpcError for what is answered as a JSON-RPC error)."""
    params = message.params
    name = params.get("name")
    if not isinstance(name, str) or not name:
        raise RpcError(protocol.INVALID_PARAMS, "tools/call needs the tool's name.")
    assert message.id is not None  # a request
    token = _progress_token(params) if accepts_sse else None
    edge = McpEdge(receive, send, message.id, headers, token)
    arguments = params.get("arguments")
    if name == MARKETPLACE_SEARCH:
        await _search(state, key_hash, arguments, edge)
        return
    agent_id = agent_id_of(name)
    if agent_id is None:
        raise unknown_tool(name)
    telemetry = CallTelemetry(state, ROUTE, scope, agent_id)
    try:
        chat = chat_of_arguments(arguments, stream=token is not None)
        await call_agent(state, telemetry, key_hash, agent_id, chat, edge=edge)
    except ApiError as error:
        telemetry.refused(error)
        if error.code is ErrorCode.INVALID_API_KEY:
            raise protocol.rpc_error_of(error) from None
        if error.code is ErrorCode.AGENT_NOT_FOUND:
            raise unknown_tool(name) from None
        await edge.refuse(error)
    finally:
        telemetry.finish()


async def _search(state: GatewayState, key_hash: str, arguments: object, edge: McpEdge) -> None:
    await live_key_owner(state, key_hash)
    settings = state.settings
    try:
        result = await marketplace.search(
            state.db, arguments, unit_price=settings.unit_price, trial_calls=settings.trial_calls
        )
    except ApiError as error:
        result = error_result(error)
    except UNAVAILABLE_ERRORS:
        result = error_result(ApiError(ErrorCode.STORAGE_UNAVAILABLE))
    await edge.send_json(result)
