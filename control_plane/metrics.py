"""The control plane's Prometheus metrics and the pure ASGI middleware that records them.

Labels are bounded: the route template (`/api/v1/agents/{agent_id}`, never the id; requests
no route matched share `unmatched`), the method, the status class. Auth failures (401, 403)
are counted by status. The registry is the one `/metrics` renders (common/metrics.py; with
PROMETHEUS_MULTIPROC_DIR set, every uvicorn worker's samples together).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from common.asgi import ASGIApp, Message, Receive, Scope, Send
from common.metrics import MetricSet

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ControlPlaneMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        declare = MetricSet(self.registry)
        self.requests = declare.counter(
            "agentlink_control_requests_total",
            "Control-plane requests by route template, method and status class.",
            ("route", "method", "status_class"),
        )
        self.request_seconds = declare.histogram(
            "agentlink_control_request_duration_seconds",
            "Control-plane request latency (to the last byte) by route template and method.",
            ("route", "method"), buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.auth_failures = declare.counter(
            "agentlink_control_auth_failures_total",
            "Requests refused for their credentials (401) or their rights (403).", ("status",),
            known=("401", "403"),
        )  # fmt: skip
        self.in_flight = declare.gauge(
            "agentlink_control_in_flight_requests",
            "Control-plane requests being served right now.", mode="livesum",
        )  # fmt: skip
        # Sampled from Postgres when /metrics is read (control_plane/chain/job_metrics.py);
        # every replica reads the same table, so the most recent sample is the value.
        self.chain_jobs = declare.gauge(
            "agentlink_control_chain_jobs",
            "Chain jobs (control_plane/chain/outbox.py) by kind and status.", ("kind", "status"),
            mode="mostrecent",
        )  # fmt: skip
        self.chain_job_lag = declare.gauge(
            "agentlink_control_chain_job_lag_seconds",
            "Age of the oldest open chain job of a kind that is not waiting for its creator"
            " (0: none).", ("kind",), mode="mostrecent",
        )  # fmt: skip


def route_template(scope: Scope) -> str:
    """The matched route's path template (Starlette puts the route in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class RequestMetrics:
    """Counts and times every HTTP request; outermost but the request id, so it sees every
    answer, errors included."""

    def __init__(self, app: ASGIApp, *, metrics: ControlPlaneMetrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self._metrics
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_tracked)
        finally:
            metrics.in_flight.dec()
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            metrics.requests.labels(route, method, f"{status // 100}xx").inc()
            metrics.request_seconds.labels(route, method).observe(time.perf_counter() - started)
            if status in (401, 403):
                metrics.auth_failures.labels(str(status)).inc()
