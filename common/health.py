"""Liveness and readiness answers both apps give Kubernetes, and their metrics page.

`/healthz` says the process serves; `/readyz` runs the app's dependency checks and answers 200
`ready` when all pass, else 503 `not ready`, naming each dependency `ok` or `unavailable`
(never why: the reason may hold a DSN).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.metrics import render_metrics

Check = Callable[[], Awaitable[object]]


async def healthz(request: Request) -> Response:
    """The process is alive and serving; says nothing about dependencies."""
    return JSONResponse({"status": "ok"})


async def readiness(checks: Mapping[str, Check]) -> Response:
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await check()
            results[name] = "ok"
        except Exception:  # any failure means "not ready"; the check's error is not shown
            results[name] = "unavailable"
    ready = all(value == "ok" for value in results.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": results},
                        status_code=200 if ready else 503)  # fmt: skip


def metrics_page(registry: CollectorRegistry) -> Response:
    body, content_type = render_metrics(registry)
    return Response(body, media_type=content_type)
