"""Liveness, readiness and metrics: what Kubernetes and Prometheus ask the gateway."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.metrics import render_metrics
from gateway.state import GatewayState


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.state.gateway
    return state


async def healthz(request: Request) -> Response:
    """The process is alive and serving; says nothing about dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: Redis answers and holds our Lua scripts."""
    state = _state(request)
    checks: dict[str, str] = {}
    try:
        await state.redis.ping()
        if not await state.scripts.all_loaded():
            await state.scripts.preload()
        checks["redis"] = "ok"
    except Exception:
        checks["redis"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)  # fmt: skip


async def metrics(request: Request) -> Response:
    body, content_type = render_metrics(_state(request).metrics.registry)
    return Response(body, media_type=content_type)
