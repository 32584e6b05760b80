"""The gateway's route table: path → handler. Handlers live in one module per concern."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from common.http_errors import envelope_exception_handlers
from gateway.proxy import ChatEndpoint
from gateway.routes import health

_CHAT = "/proxy/v1/agents/{agent_id}/chat"

ROUTES = [
    Route(_CHAT, ChatEndpoint(_CHAT), methods=["POST"]),
    # The OpenAI SDKs append /chat/completions to base_url=.../proxy/v1/agents/{agent_id}.
    Route(_CHAT + "/completions", ChatEndpoint(_CHAT + "/completions"), methods=["POST"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
]

# Routes that need no API key. The chat routes check the key first thing (gateway/proxy.py),
# before reading the body; there is no other route.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def exception_handlers() -> dict[Any, Any]:
    return envelope_exception_handlers()
