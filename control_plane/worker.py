"""The worker: the control plane's background jobs, in a process with no HTTP.

Run it with `python -m control_plane.worker`. Each periodic job is a coroutine run on its own
interval; usage ingestion is one long-running loop. SIGTERM/SIGINT set a stop event: periodic
jobs finish their current run, ingestion finishes (writes and acknowledges) what it has read,
nothing unfinished is acknowledged, and the process exits (Kubernetes sends SIGTERM before
killing a pod). Several workers may run at once: the usage streams are read through one
consumer group, and every job is safe to run concurrently with itself.

Jobs:
- usage ingestion (long-running): usage streams -> call_logs and aggregates
  (`control_plane/usage_ingest/`);
- usage claim (`USAGE_CLAIM_INTERVAL_S`): take over entries a dead consumer left pending;
- usage lag (`USAGE_LAG_INTERVAL_S`): sample the stream lag gauges;
- reservation reaper (`WORKER_REAPER_INTERVAL_S`): give back expired reservations
  (`control_plane/reaper.py`);
- call-log partitions (`WORKER_MAINTENANCE_INTERVAL_S`): create next months' partitions;
- payment reconciler (`PAYMENT_RECONCILE_INTERVAL_S`): quota adjustments not yet in Redis,
  deferred payment events (`control_plane/payments/reconciler.py`);
- playground key sweep (`DASHBOARD_PLAYGROUND_SWEEP_INTERVAL_S`): revoke the dashboard
  playground's session keys past their lifetime (`control_plane/developers/session_keys.py`);
- knowledge ingestion (long-running): uploaded files -> chunks -> embeddings
  (`control_plane/knowledge/ingest.py`);
- knowledge re-embedding (`KNOWLEDGE_REEMBED_INTERVAL_S`): chunks of another embedding model
  (`control_plane/knowledge/reembed.py`).
  playground's session keys past their lifetime (`control_plane/developers/session_keys.py`).
- settlements (`SETTLEMENT_INTERVAL_S`): settle every period that is over
  (`control_plane/earnings/settlements.py`);
- payouts (`PAYOUT_INTERVAL_S`): pay pending withdrawals (`control_plane/earnings/withdrawals.py`);
- webhook delivery (`WEBHOOK_DELIVERY_INTERVAL_S`): drain the webhook outbox
  (`control_plane/webhooks/delivery.py`; needs the encryption key ring to sign).
- user records (`USER_RECORD_SYNC_INTERVAL_S`): rewrite the gateway records of users changed
  outside our code, e.g. a role changed in plain SQL (`control_plane/user_record_sync.py`);
- chain outbox (`CHAIN_INTERVAL_S`, only with `CHAIN_RPC_URL`): mint agent tokens, record
  settlements and pay `onchain` withdrawals from the vault (`control_plane/chain/outbox.py`;
  its client lives in that loop).

Metrics are served on `WORKER_METRICS_HOST`:`WORKER_METRICS_PORT` (default 0.0.0.0:9102; port 0
serves none).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from common.cancellation import raise_if_cancelled
from common.db import create_pool
from common.json_logging import configure_logging
from common.knowledge.backends import build_embedder
from common.redis_store import LuaScripts, close_redis, create_redis
from control_plane.chain.outbox import run_chain_outbox
from control_plane.developers import session_keys
from control_plane.earnings.payouts import build_providers
from control_plane.earnings.settlements import settle_due
from control_plane.earnings.withdrawals import process_payouts
from control_plane.knowledge.ingest import KnowledgeIngester, KnowledgeMetrics
from control_plane.knowledge.reembed import reembed_all
from control_plane.payments.reconciler import reconcile
from control_plane.reaper import reap_expired
from control_plane.settings import WorkerSettings
from control_plane.usage_ingest import UsageIngester
from control_plane.user_record_sync import sync_user_records
from control_plane.webhooks.delivery import Deliverer, DeliveryRun
from control_plane.worker_metrics import WorkerMetrics, serve_metrics
from crypto.envelope import KeyRing

logger = logging.getLogger("agentlink.worker")


async def ensure_call_log_partitions(db: asyncpg.Pool, months_ahead: int) -> None:
    """Create this month's and the next `months_ahead` months' call_logs partitions."""
    await db.execute(
        "SELECT ensure_call_log_partitions(date_trunc('month', now())::date, $1)", months_ahead + 1
    )


def _deliverer(db: asyncpg.Pool, settings: WorkerSettings) -> Deliverer | None:
    webhooks = settings.webhooks
    if not webhooks.encryption_keys or not webhooks.encryption_active_key_id:
        logger.warning(
            "AGENTLINK_ENCRYPTION_KEYS is not set: webhooks are not delivered (they wait)",
            extra={"event": "webhook_delivery_off"},
        )
        return None
    keyring = KeyRing.from_env(webhooks.encryption_keys, webhooks.encryption_active_key_id)
    return Deliverer(db, keyring, webhooks)


def _log_count(message: str, count: int, event: str) -> None:
    """A job's count of what it did, logged when it did anything."""
    if count:
        logger.info(message, count, extra={"event": event, "count": count})


def count_deliveries(metrics: WorkerMetrics, run: DeliveryRun) -> None:
    for outcome in ("delivered", "retried", "failed", "disabled"):
        if count := getattr(run, outcome):
            metrics.webhook_deliveries.labels(outcome).inc(count)


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[None]]


async def run_periodically(
    job: PeriodicJob, stop: asyncio.Event, metrics: WorkerMetrics | None = None
) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            await job.run()
        except Exception:
            if metrics is not None:
                metrics.job_failures.labels(job.name).inc()
            logger.exception("job failed", extra={"event": job.name})
        raise_if_cancelled()  # a cancellation the job's Redis client swallowed
        if metrics is not None:
            metrics.job_runs.labels(job.name).inc()
            metrics.job_seconds.labels(job.name).observe(time.perf_counter() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=job.interval_s)


async def run_worker(
    settings: WorkerSettings, stop: asyncio.Event, metrics: WorkerMetrics | None = None
) -> None:
    storage = settings.storage
    metrics = WorkerMetrics() if metrics is None else metrics
    db = await create_pool(storage.database_url, min_size=1, max_size=storage.database_pool_max)
    # A blocking XREADGROUP must not outlive the socket timeout, or it reads as a Redis failure.
    block_s = settings.usage.read_block_ms / 1000
    redis = create_redis(
        storage.redis_url,
        socket_timeout_s=max(storage.redis_socket_timeout_s, block_s + 1.0),
        max_connections=storage.redis_max_connections,
        cluster=storage.redis_cluster,
    )
    scripts = LuaScripts(redis)
    ingester = UsageIngester(redis, db, settings=settings.usage, metrics=metrics)
    embedder = build_embedder(settings.knowledge.embedding)
    knowledge_metrics = KnowledgeMetrics(metrics.registry)
    knowledge = KnowledgeIngester(db, redis, embedder, settings.knowledge, knowledge_metrics)
    payout_providers = build_providers(settings.payments, settings.chain, db)
    deliverer = _deliverer(db, settings)

    async def reap() -> None:
        reaped = await reap_expired(redis, scripts, per_call_limit=settings.reaper_per_call_limit)
        metrics.reservations_reaped.inc(reaped)
        _log_count("gave back %d expired reservations", reaped, "reaper")

    async def claim() -> None:
        await ingester.claim_stale(stop=stop)
        await ingester.forget_idle_consumers()

    async def sample_lag() -> None:
        await ingester.sample_lag()

    async def reconcile_payments() -> None:
        await reconcile(db, redis, scripts)

    async def reembed() -> None:
        await reembed_all(
            db, redis, embedder, settings.knowledge, metrics=knowledge_metrics, stop=stop
        )

    async def sweep_playground_keys() -> None:
        revoked = await session_keys.revoke_expired(db, redis)
        _log_count("revoked %d expired playground keys", revoked, "playground_key_sweep")

    async def settle() -> None:
        await settle_due(db, settings.earnings)

    async def pay() -> None:
        await process_payouts(db, payout_providers, settings.earnings)

    async def deliver() -> None:
        if deliverer is not None:
            count_deliveries(metrics, await deliverer.run_once())

    jobs = [
        PeriodicJob(
            "call_log_partitions",
            settings.worker_maintenance_interval_s,
            lambda: ensure_call_log_partitions(db, settings.partition_months_ahead),
        ),
        PeriodicJob("reservation_reaper", settings.reaper_interval_s, reap),
        PeriodicJob("usage_claim", settings.usage.claim_interval_s, claim),
        PeriodicJob("usage_lag", settings.usage.lag_interval_s, sample_lag),
        PeriodicJob(
            "payment_reconciler", settings.payments.reconcile_interval_s, reconcile_payments
        ),
        PeriodicJob(
            "playground_key_sweep",
            settings.dashboard.playground_sweep_interval_s,
            sweep_playground_keys,
        ),
        PeriodicJob("knowledge_reembed", settings.knowledge.reembed_interval_s, reembed),
        PeriodicJob("settlements", settings.earnings.settlement_interval_s, settle),
        PeriodicJob("payouts", settings.earnings.payout_interval_s, pay),
        PeriodicJob("webhook_delivery", settings.webhooks.delivery_interval_s, deliver),
        PeriodicJob(
            "user_record_sync",
            settings.user_record_sync_interval_s,
            functools.partial(sync_user_records, db, redis),
        ),
    ]
    logger.info("worker started", extra={"count": len(jobs) + 2})
    try:
        await asyncio.gather(
            ingester.run(stop),
            knowledge.run(stop),
            run_chain_outbox(db, settings.chain, stop),
            *(run_periodically(job, stop, metrics) for job in jobs),
        )
    finally:
        await embedder.aclose()
        for provider in payout_providers.values():
            await provider.aclose()
        if deliverer is not None:
            await deliverer.aclose()
        await close_redis(redis)
        await db.close()
        logger.info("worker stopped")


def limit_native_threads() -> None:
    """One OpenBLAS thread and no tokenizer thread pool, unless OPENBLAS_NUM_THREADS or
    TOKENIZERS_PARALLELISM say otherwise. NumPy reads its variable once, when first imported:
    here when the embedder is built (nothing the worker imports at start loads it). Each batch
    is embedded on one thread of its own (EMBEDDING_THREADS of them); without this NumPy's
    matrix products and the tokenizer's batches would each start a thread per core beside
    them."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    limit_native_threads()
    settings = WorkerSettings.from_env()
    configure_logging(settings.log_level)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        metrics = WorkerMetrics()
        if settings.worker_metrics_port:
            serve_metrics(metrics, settings.worker_metrics_port, settings.worker_metrics_host)
        await run_worker(settings, stop, metrics)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
