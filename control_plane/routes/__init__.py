"""The control plane's route table: path → handler."""

from __future__ import annotations

from starlette.routing import Route

from control_plane.routes import health

ROUTES = [
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
]

# Routes anyone may call without a token; every other route requires authentication.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
