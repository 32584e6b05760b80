"""The official MCP client (the `mcp` package) pointed at a real gateway's `/mcp`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

LATEST = "2025-11-25"


@contextlib.asynccontextmanager
async def mcp_client(
    gateway_url: str, key: str, *, bearer: bool = True, **options: Any
) -> AsyncIterator[Client]:
    """A connected client: the handshake is done (the SDK's default `auto` mode probes the
    2026 `server/discover` first and falls back to `initialize`, as any MCP host would)."""
    headers = {"Authorization": f"Bearer {key}"} if bearer else {"X-AgentLink-Key": key}
    timeout = httpx2.Timeout(30, read=60)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(f"{gateway_url}/mcp", http_client=http)
        async with Client(transport, **options) as client:
            yield client


def text_of(result: Any) -> str:
    return "".join(part.text for part in result.content if part.type == "text")


async def raw_post(
    http: httpx.AsyncClient,
    gateway_url: str,
    key: str | None,
    body: Any,
    *,
    session: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One POST to /mcp without the SDK, for what a client library would never send."""
    sent = {"Accept": "application/json, text/event-stream", **(headers or {})}
    if key is not None:
        sent["X-AgentLink-Key"] = key
    if session is not None:
        sent["Mcp-Session-Id"] = session
    if isinstance(body, bytes):
        return await http.post(f"{gateway_url}/mcp", content=body, headers=sent)
    return await http.post(f"{gateway_url}/mcp", json=body, headers=sent)


def initialize_body(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0", "id": request_id, "method": "initialize",
        "params": {"protocolVersion": LATEST, "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}},
    }  # fmt: skip


async def open_session(http: httpx.AsyncClient, gateway_url: str, key: str) -> str:
    response = await raw_post(http, gateway_url, key, initialize_body())
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


def only_mcp_error(raised: BaseException) -> MCPError:
    """The one MCPError in what the client raised (its task group wraps it in groups)."""
    while isinstance(raised, BaseExceptionGroup) and len(raised.exceptions) == 1:
        raised = raised.exceptions[0]
    if not isinstance(raised, MCPError):
        raise raised
    return raised
