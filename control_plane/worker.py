"""The worker: the control plane's background jobs, in a process with no HTTP.

Run it with `python -m control_plane.worker`. Each job is a coroutine run on its own interval;
SIGTERM/SIGINT stop it between runs (Kubernetes sends SIGTERM before killing a pod).

Jobs today:
- call-log partitions: create next months' `call_logs` partitions ahead of time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from common.db import create_pool
from common.json_logging import configure_logging
from control_plane.settings import ControlPlaneSettings

logger = logging.getLogger("agentlink.worker")


async def ensure_call_log_partitions(db: asyncpg.Pool, months_ahead: int) -> None:
    """Create this month's and the next `months_ahead` months' call_logs partitions."""
    await db.execute(
        "SELECT ensure_call_log_partitions(date_trunc('month', now())::date, $1)", months_ahead + 1
    )


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[None]]


async def run_periodically(job: PeriodicJob, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await job.run()
        except Exception:
            logger.exception("job failed", extra={"event": job.name})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=job.interval_s)


async def run_worker(settings: ControlPlaneSettings, stop: asyncio.Event) -> None:
    storage = settings.storage
    db = await create_pool(storage.database_url, min_size=1, max_size=storage.database_pool_max)
    jobs = [
        PeriodicJob(
            "call_log_partitions",
            settings.worker_maintenance_interval_s,
            lambda: ensure_call_log_partitions(db, settings.partition_months_ahead),
        ),
    ]
    logger.info("worker started", extra={"count": len(jobs)})
    try:
        await asyncio.gather(*(run_periodically(job, stop) for job in jobs))
    finally:
        await db.close()
        logger.info("worker stopped")


def main() -> None:
    settings = ControlPlaneSettings.from_env()
    configure_logging(settings.log_level)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
