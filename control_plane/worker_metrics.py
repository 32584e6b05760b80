"""The worker's Prometheus metrics, on a registry of their own.

The worker is one process, so no multiprocess mode: `serve_metrics` exposes the registry on a
small HTTP port (`WORKER_METRICS_PORT`, default 9102) from a daemon thread. Label sets are
bounded: `billable` is true/false, `job` is one of the worker's job names.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from common.metrics import MetricSet

_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        declare = MetricSet(self.registry)
        self.events_ingested = declare.counter(
            "agentlink_worker_usage_events_ingested_total",
            "Usage events written to call_logs for the first time.", ("billable",),
            known=("true", "false"),
        )  # fmt: skip
        self.events_duplicate = declare.counter(
            "agentlink_worker_usage_events_duplicate_total",
            "Redelivered usage events that were already in call_logs (written nothing).",
        )
        self.batches = declare.counter(
            "agentlink_worker_usage_batches_total", "Usage batches committed to Postgres."
        )
        self.batch_failures = declare.counter(
            "agentlink_worker_usage_batch_failures_total",
            "Usage batches that failed to commit (left pending, retried).",
        )
        self.batch_seconds = declare.histogram(
            "agentlink_worker_usage_batch_seconds",
            "Time to write one usage batch to Postgres and acknowledge it.",
            buckets=_BATCH_BUCKETS,
        )
        self.dead_lettered = declare.counter(
            "agentlink_worker_usage_dead_lettered_total",
            "Malformed usage entries moved to the dead-letter stream.",
        )
        self.claimed = declare.counter(
            "agentlink_worker_usage_claimed_total",
            "Pending usage entries taken over from idle consumers (XAUTOCLAIM).",
        )
        self.stream_lag = declare.gauge(
            "agentlink_worker_usage_stream_lag",
            "Usage events not yet in Postgres: pending plus undelivered, all streams.",
        )
        self.stream_pending = declare.gauge(
            "agentlink_worker_usage_stream_pending",
            "Usage events delivered to a consumer and not yet acknowledged, all streams.",
        )
        self.reservations_reaped = declare.counter(
            "agentlink_worker_reservations_reaped_total",
            "Expired quota/trial reservations given back by the reaper.",
        )
        self.job_failures = declare.counter(
            "agentlink_worker_job_failures_total", "Periodic job runs that raised.", ("job",)
        )
        self.job_runs = declare.counter(
            "agentlink_worker_job_runs_total", "Periodic job runs, failed ones included.", ("job",)
        )
        self.job_seconds = declare.histogram(
            "agentlink_worker_job_seconds", "Time one periodic job run took.", ("job",),
            buckets=_BATCH_BUCKETS,
        )  # fmt: skip
        self.webhook_deliveries = declare.counter(
            "agentlink_worker_webhook_deliveries_total",
            "Webhook delivery attempts by outcome (delivered, retried, failed, disabled).",
            ("outcome",), known=("delivered", "retried", "failed", "disabled"),
        )  # fmt: skip


def serve_metrics(metrics: WorkerMetrics, port: int, addr: str) -> WSGIServer:
    """Serve `/metrics` on `port` from a daemon thread; `shutdown()` the result to stop it."""
    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server
