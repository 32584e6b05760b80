"""`/mcp`: the MCP Streamable HTTP endpoint (gateway/mcp/__init__.py says what is served).

Every request is checked in this order, each failure answered with a JSON-RPC error at the
HTTP status the specification gives it: the API key's shape (401, before the body is read),
the body's size (413) and framing (400), then, for anything but `initialize`, the
`MCP-Protocol-Version` header (400) and the session (400 without one, 404 for one that is not
this key's, so the client starts a new one). Methods that are not a call check that the key
is live (its Redis record); `tools/call` (gateway/mcp/call.py) leaves that to admission, as
a chat call does.
"""

from __future__ import annotations

from typing import Any

from common.asgi import Receive, Scope, Send, read_body
from common.db import UNAVAILABLE_ERRORS
from common.errors import ApiError, ErrorCode
from gateway.live_keys import live_key_owner
from gateway.mcp import protocol, tools
from gateway.mcp.call import call_tool
from gateway.mcp.protocol import Message, RpcError
from gateway.state import GatewayState

SERVER_INFO = {"name": "agentlink", "title": "AgentLink agents", "version": "0.1.0"}
INSTRUCTIONS = (
    "Each tool is a published AgentLink agent; a call is billed like a chat call (its price is "
    "in the tool's description). marketplace_search finds more agents."
)
_SESSION_HEADER = b"mcp-session-id"
_VERSION_HEADER = b"mcp-protocol-version"
_JSON = b"application/json"


class McpEndpoint:
    """ASGI endpoint for `/mcp` (POST; GET and DELETE are answered 405)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: GatewayState = scope["state"]["gateway"]
        message_id: protocol.RequestId | None = None
        headers: list[tuple[bytes, bytes]] = []
        try:
            key_hash = await state.api_keys.key_hash(scope["headers"])
            if scope["method"] != "POST":
                # No stream for server-initiated messages (we send none), and sessions end
                # when unused: both methods are optional for a server.
                raise RpcError(
                    protocol.INVALID_REQUEST, "Only POST is served on /mcp.", http_status=405
                )
            message = protocol.parse_message(
                await read_body(scope, receive, state.settings.max_body_bytes)
            )
            message_id = message.id
            if message.method == "initialize":
                session_id = protocol.new_session_id(key_hash)
                headers.append((_SESSION_HEADER, session_id.encode()))
            else:
                _check_session(scope["headers"], key_hash)
            if not message.is_request:
                # A notification (initialized, cancelled...) or a response: nothing to answer.
                await _send(send, 202, b"", headers)
                return
            if message.method == "tools/call":
                await call_tool(
                    state, scope, receive, send, key_hash=key_hash, message=message,
                    headers=headers, accepts_sse=_accepts_sse(scope["headers"]),
                )  # fmt: skip
                return
            result = await _dispatch(state, key_hash, message)
            await _send(send, 200, protocol.result_body(message.id or 0, result), headers)
        except ApiError as error:
            await _send_error(send, message_id, protocol.rpc_error_of(error), headers)
        except RpcError as error:
            await _send_error(send, message_id, error, headers)


async def _dispatch(state: GatewayState, key_hash: str, message: Message) -> dict[str, Any]:
    method = message.method
    if method == "initialize":
        await live_key_owner(state, key_hash)
        version = protocol.negotiated_version(message.params.get("protocolVersion"))
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": SERVER_INFO,
            "instructions": INSTRUCTIONS,
        }
    if method == "ping":
        await live_key_owner(state, key_hash)
        return {}
    if method == "tools/list":
        if message.params.get("cursor") is not None:
            raise RpcError(protocol.INVALID_PARAMS, "This list has one page: no cursor is valid.")
        owner = await live_key_owner(state, key_hash)
        settings = state.settings
        try:
            listed = await tools.listed_tools(
                state.db, owner, key_hash,
                unit_price=settings.unit_price, trial_calls=settings.trial_calls,
            )  # fmt: skip
        except UNAVAILABLE_ERRORS:
            raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        return {"tools": listed}
    raise RpcError(protocol.METHOD_NOT_FOUND, f"Method not found: {str(method)[:64]}")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _accepts_sse(headers: list[tuple[bytes, bytes]]) -> bool:
    accept = _header(headers, b"accept")
    return accept is not None and b"text/event-stream" in accept.lower()


def _check_session(headers: list[tuple[bytes, bytes]], key_hash: str) -> None:
    version = _header(headers, _VERSION_HEADER)
    if version is not None and version.decode("latin-1") not in protocol.SUPPORTED_VERSIONS:
        raise RpcError(
            protocol.INVALID_REQUEST,
            "Unsupported MCP-Protocol-Version; this server speaks "
            + ", ".join(protocol.SUPPORTED_VERSIONS) + ".",
            http_status=400,
        )  # fmt: skip
    session = _header(headers, _SESSION_HEADER)
    if session is None:
        raise RpcError(
            protocol.INVALID_REQUEST,
            "Missing Mcp-Session-Id header: send initialize first.",
            http_status=400,
        )
    if not protocol.session_belongs_to(session.decode("latin-1"), key_hash):
        raise RpcError(
            protocol.INVALID_REQUEST,
            "Unknown session for this key: send initialize again.",
            http_status=404,
        )


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    raw = [*headers, (b"content-length", str(len(body)).encode())]
    if body:
        raw.append((b"content-type", _JSON))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _send_error(
    send: Send,
    message_id: protocol.RequestId | None,
    error: RpcError,
    headers: list[tuple[bytes, bytes]],
) -> None:
    extra = [(b"allow", b"POST")] if error.http_status == 405 else []
    await _send(send, error.http_status, protocol.error_body(message_id, error), [*headers, *extra])
