"""The official MCP SDK's own server with one tool that does nothing but echo: the floor the
SDK's machinery costs per `tools/call`, for `loadtests.mcp_load` to compare with the gateway.

    uvicorn --factory loadtests.sdk_mcp_server:create_app
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer


def create_app() -> Any:
    server = MCPServer("echo")

    @server.tool()
    def echo(prompt: str) -> str:
        """Answer the prompt back."""
        return prompt

    return server.streamable_http_app(stateless_http=True, json_response=True)
