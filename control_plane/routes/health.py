"""Liveness, readiness and metrics for the control plane."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.metrics import render_metrics
from control_plane.state import ControlPlaneState


def _state(request: Request) -> ControlPlaneState:
    state: ControlPlaneState = request.state.control
    return state


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: Postgres answers a query and Redis a PING."""
    state = _state(request)
    checks: dict[str, str] = {}
    try:
        async with state.db.acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception:
        checks["postgres"] = "unavailable"
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception:
        checks["redis"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)  # fmt: skip


async def metrics(request: Request) -> Response:
    body, content_type = render_metrics(_state(request).registry)
    return Response(body, media_type=content_type)
