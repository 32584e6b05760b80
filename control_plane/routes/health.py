"""Liveness, readiness and metrics for the control plane."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from common.health import healthz, metrics_page, readiness
from common.redis_store import redis_answers
from control_plane.state import ControlPlaneState

__all__ = ["healthz", "metrics", "readyz"]


def _state(request: Request) -> ControlPlaneState:
    state: ControlPlaneState = request.state.control
    return state


async def readyz(request: Request) -> Response:
    """Ready: Postgres answers a query and Redis serves (common/redis_store.py)."""
    state = _state(request)

    async def postgres() -> None:
        async with state.db.acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1")

    async def redis() -> None:
        await redis_answers(state.redis)  # on a cluster: one primary down leaves us ready

    return await readiness({"postgres": postgres, "redis": redis})


async def metrics(request: Request) -> Response:
    state = _state(request)
    if state.chain_job_gauges is not None:
        await state.chain_job_gauges.refresh(state.db)
    return metrics_page(state.registry)
