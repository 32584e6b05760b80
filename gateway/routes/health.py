"""Liveness, readiness and metrics: what Kubernetes and Prometheus ask the gateway."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.health import healthz, metrics_page, readiness
from common.redis_store import redis_answers
from gateway.state import GatewayState

__all__ = ["healthz", "metrics", "readyz"]


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.state.gateway
    return state


async def readyz(request: Request) -> Response:
    """Ready for traffic: not shutting down (gateway/drain.py), and Redis serves (on a cluster:
    some primary says the cluster is ok, common/redis_store.py) and holds our Lua scripts."""
    state = _state(request)
    if state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)

    async def redis() -> None:
        await redis_answers(state.redis)
        if state.settings.storage.redis_cluster:
            return  # the hot path loads a script on the node that lacks it (EVAL on NOSCRIPT)
        if not await state.scripts.all_loaded():
            await state.scripts.preload()

    return await readiness({"redis": redis})


async def metrics(request: Request) -> Response:
    metrics = _state(request).metrics
    metrics.flush()  # this process' tallies, up to now (gateway/metrics.py)
    return metrics_page(metrics.registry)
