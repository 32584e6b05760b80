"""The gateway's ASGI app: `create_app()` wires settings, lifespan state, middleware and routes.

Run it with `uvicorn --factory gateway.app:create_app`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware

from common.asgi import EnvelopeMiddleware
from common.json_logging import configure_logging
from common.redis_store import LuaScripts, create_redis
from gateway.routes import ROUTES, exception_handlers
from gateway.settings import GatewaySettings
from gateway.state import GatewayState

logger = logging.getLogger("agentlink.gateway")


def create_app(settings: GatewaySettings | None = None) -> Starlette:
    settings = settings or GatewaySettings.from_env()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, GatewayState]]:
        redis = create_redis(
            settings.storage.redis_url,
            socket_timeout_s=settings.storage.redis_socket_timeout_s,
            max_connections=settings.storage.redis_max_connections,
        )
        scripts = LuaScripts(redis)
        state = GatewayState(
            settings=settings, redis=redis, scripts=scripts, registry=CollectorRegistry()
        )
        try:
            await scripts.preload()
        except RedisError:
            # Redis may come up after us; /readyz reports it and loads the scripts then.
            logger.warning("could not preload Lua scripts: Redis unavailable at start-up")
        try:
            yield {"gateway": state}
        finally:
            await redis.aclose()

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(EnvelopeMiddleware)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
