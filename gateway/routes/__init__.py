"""The gateway's route table: path → handler. Handlers live in one module per concern.

Deny by default: only `PUBLIC_PATHS` answer without an API key. Every other route is an
endpoint that checks the caller's key itself, first thing, before it reads the body (the
chat endpoint: gateway/proxy.py), and `route()` refuses to build one that does not.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from gateway.dialects.anthropic_messages import MessagesEndpoint
from gateway.mcp.endpoint import McpEndpoint
from gateway.proxy import ChatEndpoint
from gateway.routes import docs, health
from gateway.routes.models import ModelsEndpoint

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})

# Endpoints that authenticate the caller's API key before anything else.
API_KEY_ENDPOINTS: tuple[type, ...] = (ChatEndpoint, MessagesEndpoint, ModelsEndpoint, McpEndpoint)


def route(path: str, endpoint: Any, methods: list[str]) -> Route:
    if path not in PUBLIC_PATHS and not isinstance(endpoint, API_KEY_ENDPOINTS):
        raise ValueError(f"{path} is not public and its endpoint does not check an API key")
    return Route(path, endpoint, methods=methods)


_AGENT = "/proxy/v1/agents/{agent_id}"
_CHAT = _AGENT + "/chat"
# The Anthropic SDK appends /v1/messages to base_url=.../proxy/v1/agents/{agent_id}.
_MESSAGES = _AGENT + "/v1/messages"

ROUTES = [
    route(_CHAT, ChatEndpoint(_CHAT), methods=["POST"]),
    # The OpenAI SDKs append /chat/completions to base_url=.../proxy/v1/agents/{agent_id}.
    route(_CHAT + "/completions", ChatEndpoint(_CHAT + "/completions"), methods=["POST"]),
    route(_MESSAGES, MessagesEndpoint(_MESSAGES), methods=["POST"]),
    # ... and /models for client.models.list() / .retrieve(): the agent is its one model.
    route(_AGENT + "/models", ModelsEndpoint(one=False), methods=["GET"]),
    route(_AGENT + "/models/{model}", ModelsEndpoint(one=True), methods=["GET"]),
    # Agents as MCP tools (Streamable HTTP): gateway/mcp.
    route("/mcp", McpEndpoint(), methods=["POST", "GET", "DELETE"]),
    route("/healthz", health.healthz, methods=["GET"]),
    route("/readyz", health.readyz, methods=["GET"]),
    route("/metrics", health.metrics, methods=["GET"]),
    route("/openapi.json", docs.openapi_json, methods=["GET"]),
]
