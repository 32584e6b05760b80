"""The worker's Prometheus metrics, on a registry of their own.

The worker is one process, so no multiprocess mode: `serve_metrics` exposes the registry on a
small HTTP port (`WORKER_METRICS_PORT`, default 9102) from a daemon thread. Label sets are
bounded: `billable` is true/false, `job` is one of the worker's job names.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        r = self.registry
        self.events_ingested = Counter(
            "agentlink_worker_usage_events_ingested_total",
            "Usage events written to call_logs for the first time.",
            ["billable"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "agentlink_worker_usage_events_duplicate_total",
            "Redelivered usage events that were already in call_logs (written nothing).",
            registry=r,
        )
        self.batches = Counter(
            "agentlink_worker_usage_batches_total",
            "Usage batches committed to Postgres.",
            registry=r,
        )
        self.batch_failures = Counter(
            "agentlink_worker_usage_batch_failures_total",
            "Usage batches that failed to commit (left pending, retried).",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "agentlink_worker_usage_batch_seconds",
            "Time to write one usage batch to Postgres and acknowledge it.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.dead_lettered = Counter(
            "agentlink_worker_usage_dead_lettered_total",
            "Malformed usage entries moved to the dead-letter stream.",
            registry=r,
        )
        self.claimed = Counter(
            "agentlink_worker_usage_claimed_total",
            "Pending usage entries taken over from idle consumers (XAUTOCLAIM).",
            registry=r,
        )
        self.stream_lag = Gauge(
            "agentlink_worker_usage_stream_lag",
            "Usage events not yet in Postgres: pending plus undelivered, all streams.",
            registry=r,
        )
        self.stream_pending = Gauge(
            "agentlink_worker_usage_stream_pending",
            "Usage events delivered to a consumer and not yet acknowledged, all streams.",
            registry=r,
        )
        self.reservations_reaped = Counter(
            "agentlink_worker_reservations_reaped_total",
            "Expired quota/trial reservations given back by the reaper.",
            registry=r,
        )
        self.job_failures = Counter(
            "agentlink_worker_job_failures_total",
            "Periodic job runs that raised.",
            ["job"],
            registry=r,
        )
        self.job_runs = Counter(
            "agentlink_worker_job_runs_total",
            "Periodic job runs, failed ones included.",
            ["job"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "agentlink_worker_job_seconds",
            "Time one periodic job run took.",
            ["job"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "agentlink_worker_webhook_deliveries_total",
            "Webhook delivery attempts by outcome (delivered, retried, failed, disabled).",
            ["outcome"],
            registry=r,
        )
        for billable in ("true", "false"):
            self.events_ingested.labels(billable)
        for outcome in ("delivered", "retried", "failed", "disabled"):
            self.webhook_deliveries.labels(outcome)


def serve_metrics(metrics: WorkerMetrics, port: int, addr: str) -> WSGIServer:
    """Serve `/metrics` on `port` from a daemon thread; `shutdown()` the result to stop it."""
    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server
