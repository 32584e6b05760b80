"""The gateway's ASGI app: `create_app()` wires settings, lifespan state, middleware and routes.

Run it with `uvicorn --factory gateway.app:create_app`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware

from common.asgi import EnvelopeMiddleware
from common.db import create_pool
from common.direct_routes import DirectRoutes
from common.feature_flags import FeatureFlags
from common.http_errors import envelope_exception_handlers
from common.json_logging import configure_logging
from common.knowledge.retrieval import SERVER_SETTINGS as RETRIEVAL_SERVER_SETTINGS
from common.redis_store import LuaScripts, close_redis, create_redis
from crypto.envelope import KeyRing
from gateway.admission import AdmissionLimits, Admitter
from gateway.agent_configs import AgentConfigCache
from gateway.api_keys import KeyGate
from gateway.breaker import BreakerSettings, CircuitBreaker
from gateway.client_usage import CallCosts
from gateway.drain import Drain
from gateway.hot_cluster import HotCluster
from gateway.hot_redis import HotRedis, HotScripts
from gateway.knowledge import KnowledgeRetriever
from gateway.maintenance import MaintenanceGate
from gateway.metrics import GatewayMetrics
from gateway.provider_call import GuardedProvider, ProviderTimeouts
from gateway.providers import build_providers
from gateway.records import RecordLoader
from gateway.routes import PUBLIC_PATHS, ROUTES
from gateway.settings import GatewaySettings
from gateway.settlement import Settler
from gateway.sharded_admission import ShardedAdmitter, agent_read
from gateway.state import GatewayState
from gateway.timers import Timers
from gateway.tracing import Tracing

logger = logging.getLogger("agentlink.gateway")
# At shutdown, how long commits still running, or retrying (Redis away), may take before the
# reaper's turn.
_SETTLE_DRAIN_S = 5.0
# The cyclic collector's first threshold (CPython's default is 700). A call's objects die by
# reference counting, but with a few dozen calls in flight their live objects keep passing
# 700, so at the default the collector ran every few calls, found nothing (0 objects freed in
# a load run), and cost ~10% of the worker's CPU; start-up's objects, walked by every full
# collection, made each of those a 50 ms pause. Measured with both settings alternating in one
# process: -7% CPU per JSON call, -15% per stream.
_GC_YOUNG_THRESHOLD = 20_000


def _tune_collector() -> None:
    """Once the app is built: what start-up made lives for the whole process, so the
    collector stops walking it (gc.freeze), and it runs far less often on young objects."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, middle, old)


def create_app(
    settings: GatewaySettings | None = None, *, tracing: Tracing | None = None
) -> DirectRoutes:
    settings = settings or GatewaySettings.from_env()
    configure_logging(settings.log_level)
    keyring = KeyRing.from_env(settings.encryption_keys, settings.encryption_active_key_id)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, GatewayState]]:
        storage = settings.storage
        redis = create_redis(
            storage.redis_url,
            socket_timeout_s=storage.redis_socket_timeout_s,
            max_connections=storage.redis_max_connections,
            cluster=storage.redis_cluster,
        )
        # Postgres is touched only on cold misses: no connections until one is needed.
        db = await create_pool(
            storage.database_url, min_size=0, max_size=storage.database_pool_max,
            server_settings=RETRIEVAL_SERVER_SETTINGS,  # for knowledge retrieval
            # Its statements set nothing in a session: a borrowed connection needs no reset,
            # which was a round trip to Postgres per knowledge call (and per cold miss).
            reset_sessions=False,
            binary_vectors=True,  # the question's vector goes as pgvector's binary form
        )  # fmt: skip
        scripts = LuaScripts(redis)
        # The per-call scripts go through a leaner client (gateway/hot_redis.py); on a Redis
        # Cluster one per primary, each call sent to its user's (gateway/hot_cluster.py).
        hot_redis: HotRedis | HotCluster
        if storage.redis_cluster:
            hot_redis = HotCluster(storage.redis_url, timeout_s=storage.redis_socket_timeout_s)
        else:
            hot_redis = HotRedis(storage.redis_url, timeout_s=storage.redis_socket_timeout_s)
        metrics = GatewayMetrics(CollectorRegistry())
        records = RecordLoader(db, redis, scripts, settings.unit_price)
        api_keys = KeyGate(db)
        await api_keys.load_legacy_hashes()  # logged and retried later if Postgres is away
        limits = AdmissionLimits(
            free_per_window=settings.rate_limit_free,
            paid_per_window=settings.rate_limit_paid,
            window_ms=settings.rate_window_s * 1000,
            reservation_ms=settings.reservation_s * 1000,
            trial_calls=settings.trial_calls,
        )
        timeouts = ProviderTimeouts(
            complete_s=settings.upstream_timeout_s,
            first_byte_s=settings.stream_first_byte_timeout_s,
            timers=Timers(),  # made in the loop, whose one timer they share
        )
        breaker_settings = BreakerSettings(
            failure_ratio=settings.breaker_failure_ratio,
            interval_s=settings.breaker_interval_s,
            open_s=settings.breaker_open_s,
            half_open_calls=settings.breaker_half_open_calls,
        )
        providers = {
            name: GuardedProvider(
                provider,
                CircuitBreaker(
                    breaker_settings, on_state_change=metrics.breaker_state.labels(name).set
                ),
                metrics,
                timeouts,
            )
            for name, provider in build_providers(settings).items()
        }
        for name in providers:
            metrics.breaker_state.labels(name).set(0)
        flags = FeatureFlags(redis, db, refresh_s=settings.operations.flags_refresh_s)
        admitter: Admitter
        if isinstance(hot_redis, HotCluster):  # the agent record read beside admission
            admitter = ShardedAdmitter(
                HotScripts(hot_redis), records, limits, read_agent=agent_read(hot_redis),
                flags=flags, taken_back=metrics.admissions_taken_back.inc,
            )  # fmt: skip
        else:
            admitter = Admitter(HotScripts(hot_redis), records, limits, flags=flags)
        state = GatewayState(
            settings=settings,
            redis=redis,
            db=db,
            scripts=scripts,
            metrics=metrics,
            api_keys=api_keys,
            records=records,
            admitter=admitter,
            settler=Settler(admitter, metrics),
            agent_configs=AgentConfigCache(db, keyring),
            providers=providers,
            tracing=tracing or Tracing.from_env(),
            knowledge=KnowledgeRetriever(db, flags, settings.knowledge, metrics.registry),
            flags=flags,
            drain=Drain(settings.shutdown_drain_s),
            costs=CallCosts(settings.unit_price),
            timers=timeouts.timers,
        )
        try:
            await scripts.preload()
        except RedisError:
            # Redis may come up after us; /readyz reports it and loads the scripts then.
            logger.warning("could not preload Lua scripts: Redis unavailable at start-up")
        _tune_collector()
        try:
            with state.drain.on_shutdown_signals():
                async with flags.running(), metrics.flushing():
                    yield {"gateway": state}
        finally:
            # uvicorn has waited for the requests in flight (and cancelled what outlived
            # --timeout-graceful-shutdown): their commits, then the retries, before Redis closes.
            await state.drain.settled(_SETTLE_DRAIN_S)
            await state.settler.drain(_SETTLE_DRAIN_S)
            for provider in providers.values():
                await provider.aclose()
            await hot_redis.aclose()
            await state.knowledge.aclose()
            state.tracing.shutdown()
            await close_redis(redis)
            await db.close()

    middleware = [
        Middleware(EnvelopeMiddleware),
        Middleware(MaintenanceGate, open_paths=PUBLIC_PATHS),
    ]
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers=envelope_exception_handlers(),
        lifespan=lifespan,
    )
    # The proxy routes reach their endpoints through the same middleware, past Starlette's
    # own layers (common/direct_routes.py); everything else is the Starlette app's.
    return DirectRoutes(app, ROUTES, middleware)
