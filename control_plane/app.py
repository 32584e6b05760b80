"""The control plane's ASGI app. Run it with `uvicorn --factory control_plane.app:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware

from common.asgi import EnvelopeMiddleware
from common.db import create_pool
from common.http_errors import envelope_exception_handlers
from common.json_logging import configure_logging
from common.redis_store import create_redis
from control_plane.routes import ROUTES
from control_plane.settings import ControlPlaneSettings
from control_plane.state import ControlPlaneState


def create_app(settings: ControlPlaneSettings | None = None) -> Starlette:
    settings = settings or ControlPlaneSettings.from_env()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, ControlPlaneState]]:
        storage = settings.storage
        db = await create_pool(
            storage.database_url,
            min_size=storage.database_pool_min,
            max_size=storage.database_pool_max,
        )
        redis = create_redis(storage.redis_url, socket_timeout_s=storage.redis_socket_timeout_s)
        try:
            yield {"control": ControlPlaneState(settings, db, redis, CollectorRegistry())}
        finally:
            await redis.aclose()
            await db.close()

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(EnvelopeMiddleware)],
        exception_handlers=envelope_exception_handlers(),
        lifespan=lifespan,
    )
