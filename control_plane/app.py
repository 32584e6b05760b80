"""The control plane's ASGI app. Run it with `uvicorn --factory control_plane.app:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from common.asgi import ErrorEnvelopeMiddleware, RequestIdMiddleware
from common.db import create_pool
from common.feature_flags import FeatureFlags
from common.http_errors import envelope_exception_handlers
from common.json_logging import configure_logging
from common.redis_store import close_redis, create_redis
from common.routing import by_path
from control_plane.chain.client import ChainClient
from control_plane.chain.job_metrics import ChainJobGauges
from control_plane.dashboard import csrf
from control_plane.dashboard import routes as dashboard
from control_plane.dashboard.state import DashboardState
from control_plane.dashboard.templating import create_templates
from control_plane.maintenance import ReadOnlyGate
from control_plane.metrics import ControlPlaneMetrics, RequestMetrics
from control_plane.payments.services import PaymentServices
from control_plane.routes import ROUTES
from control_plane.settings import ApiSettings
from control_plane.state import ControlPlaneState
from crypto.envelope import KeyRing
from crypto.passwords import PasswordHashing


def create_app(
    settings: ApiSettings | None = None, *, passwords: PasswordHashing | None = None
) -> Starlette:
    settings = settings or ApiSettings.from_env()
    configure_logging(settings.log_level)
    keyring = KeyRing.from_env(settings.encryption_keys, settings.encryption_active_key_id)
    hashing = passwords or PasswordHashing()
    templates = create_templates()
    metrics = ControlPlaneMetrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        storage = settings.storage
        db = await create_pool(
            storage.database_url,
            min_size=storage.database_pool_min,
            max_size=storage.database_pool_max,
        )
        redis = create_redis(
            storage.redis_url,
            socket_timeout_s=storage.redis_socket_timeout_s,
            cluster=storage.redis_cluster,
        )
        flags = FeatureFlags(redis, db, refresh_s=settings.operations.flags_refresh_s)
        state = ControlPlaneState(
            settings=settings,
            db=db,
            redis=redis,
            registry=metrics.registry,
            keyring=keyring,
            passwords=hashing,
            dummy_password_hash=hashing.hash("not-a-real-password"),
            payments=PaymentServices.build(settings.payments, redis),
            flags=flags,
            chain=ChainClient(settings.chain) if settings.chain.enabled else None,
            chain_job_gauges=ChainJobGauges(metrics) if settings.chain.enabled else None,
        )
        gateway = httpx.AsyncClient(
            base_url=settings.dashboard.gateway_url,
            timeout=httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=5.0),
        )
        dashboard_state = DashboardState(
            settings=settings.dashboard,
            templates=templates,
            csrf_key=csrf.derive_key(settings.jwt_secret),
            gateway=gateway,
        )
        try:
            async with flags.running():
                yield {"control": state, "dashboard": dashboard_state}
        finally:
            if state.payments is not None:
                await state.payments.aclose()
            if state.chain is not None:
                await state.chain.aclose()
            await gateway.aclose()
            await close_redis(redis)
            await db.close()

    return Starlette(
        routes=by_path([*ROUTES, *dashboard.ROUTES]),
        # The client address first: X-Forwarded-For only from TRUSTED_PROXIES (uvicorn runs
        # with --no-proxy-headers, so nothing else rewrites it). The request id next (every
        # response carries it, CORS preflights too); errors become the envelope inside CORS,
        # so error answers carry the CORS headers.
        middleware=[
            Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies)),
            Middleware(RequestIdMiddleware),
            Middleware(RequestMetrics, metrics=metrics),
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["X-Request-ID", "X-RateLimit-Remaining"],
                allow_credentials=True,
                max_age=12 * 3600,
            ),
            Middleware(ErrorEnvelopeMiddleware),
            Middleware(ReadOnlyGate),
        ],
        exception_handlers=envelope_exception_handlers(),
        lifespan=lifespan,
    )
