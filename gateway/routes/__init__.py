"""The gateway's route table: path → handler. Handlers live in one module per concern."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from common.http_errors import envelope_exception_handlers
from gateway.routes import health

ROUTES = [
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
]

# Routes that need no API key. Everything else is denied without one.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def exception_handlers() -> dict[Any, Any]:
    return envelope_exception_handlers()
