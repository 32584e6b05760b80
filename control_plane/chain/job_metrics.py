"""The chain jobs' gauges on the control plane's /metrics: how many jobs of each kind are in
each status, and how long the oldest open one has waited (the outbox's lag).

They are read from `chain_jobs` when /metrics is scraped, at most once per `min_interval_s`
per process (a scrape every few seconds from several Prometheus replicas costs one grouped
query, answered from the (kind, status) index of migration 0015). A job waiting for its
creator (no wallet yet) is counted but is no lag: nothing on our side holds it up. With the
chain off (no CHAIN_RPC_URL) nothing is sampled, so jobs piling up in their table by design
raise no alert. A database that does not answer leaves the last values in place.
"""

from __future__ import annotations

import logging
import time

import asyncpg

from control_plane.chain.jobs import JOB_KINDS, JOB_STATUSES, WAITING_FOR_CREATOR
from control_plane.metrics import ControlPlaneMetrics

logger = logging.getLogger("agentlink.control.metrics")

# Counts from the (kind, status) index; the lag from the open jobs alone (the due index).
_SAMPLE = """
SELECT kind, status, count(*) AS jobs, 0::float8 AS lag_s FROM chain_jobs GROUP BY kind, status
UNION ALL
SELECT kind, NULL, 0, extract(epoch FROM now() - min(created_at))::float8 FROM chain_jobs
WHERE status IN ('pending', 'sent') AND (last_error IS NULL OR left(last_error, $1) <> $2)
GROUP BY kind"""


class ChainJobGauges:
    def __init__(self, metrics: ControlPlaneMetrics, *, min_interval_s: float = 5.0) -> None:
        self._jobs = metrics.chain_jobs
        self._lag = metrics.chain_job_lag
        self._min_interval_s = min_interval_s
        self._sampled_at: float | None = None

    async def refresh(self, db: asyncpg.Pool, *, timeout_s: float = 2.0) -> None:
        now = time.monotonic()
        if self._sampled_at is not None and now - self._sampled_at < self._min_interval_s:
            return
        self._sampled_at = now
        try:
            rows = await db.fetch(
                _SAMPLE, len(WAITING_FOR_CREATOR), WAITING_FOR_CREATOR, timeout=timeout_s
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            logger.warning("chain job metrics not sampled", extra={"event": "chain_metrics"})
            return
        counts = {(row["kind"], row["status"]): int(row["jobs"]) for row in rows}
        lags = {row["kind"]: float(row["lag_s"]) for row in rows if row["status"] is None}
        for kind in JOB_KINDS:
            for status in JOB_STATUSES:
                self._jobs.labels(kind, status).set(counts.get((kind, status), 0))
            self._lag.labels(kind).set(lags.get(kind, 0.0))
