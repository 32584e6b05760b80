"""Liveness, readiness and metrics: what Kubernetes and Prometheus ask the gateway."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.health import healthz, metrics_page, readiness
from gateway.state import GatewayState

__all__ = ["healthz", "metrics", "readyz"]


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.state.gateway
    return state


async def readyz(request: Request) -> Response:
    """Ready for traffic: not shutting down (gateway/drain.py), and Redis answers and holds
    our Lua scripts."""
    state = _state(request)
    if state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)

    async def redis() -> None:
        await state.redis.ping()
        if not await state.scripts.all_loaded():
            await state.scripts.preload()

    return await readiness({"redis": redis})


async def metrics(request: Request) -> Response:
    return metrics_page(_state(request).metrics.registry)
