"""The gateway's Prometheus metrics. Labels are bounded sets only: route templates, provider,
model (the agents' configured models), status class, verdict. Never user, key or agent ids.

Built once per app on its own registry; with PROMETHEUS_MULTIPROC_DIR set, prometheus-client
writes samples to per-process files and `/metrics` aggregates them (common/metrics.py).
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from common.metrics import MetricSet

_Metric = TypeVar("_Metric", bound=MetricWrapperBase)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        declare = MetricSet(registry)
        self.requests = declare.counter(
            "agentlink_gateway_requests_total",
            "Proxied calls by route template and status class.", ("route", "status_class"),
        )  # fmt: skip
        self.request_seconds = declare.histogram(
            "agentlink_gateway_request_duration_seconds",
            "Whole-call latency as the client sees it (to the last byte).", ("route", "stream"),
            buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.provider_seconds = declare.histogram(
            "agentlink_gateway_provider_latency_seconds",
            "Provider latency: whole answer (non-streaming) or whole stream.",
            ("provider", "model"), buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.time_to_first_token = declare.histogram(
            "agentlink_gateway_time_to_first_token_seconds",
            "Streaming: time from sending the request to the provider to its first chunk.",
            ("provider", "model"), buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.admissions = declare.counter(
            "agentlink_gateway_admission_verdicts_total", "Admission decisions by verdict.",
            ("verdict",),
        )  # fmt: skip
        self.breaker_state = declare.gauge(
            "agentlink_gateway_circuit_breaker_state",
            "Circuit breaker state per provider: 0 closed, 1 open, 2 half-open.", ("provider",),
            mode="max",
        )  # fmt: skip
        self.in_flight = declare.gauge(
            "agentlink_gateway_in_flight_requests",
            "Calls being served right now (the autoscaling signal).", mode="livesum",
        )  # fmt: skip
        self.leaks_blocked = declare.counter(
            "agentlink_gateway_prompt_leaks_blocked_total",
            "Answers withheld because they repeated the agent's confidential prompt.",
        )
        self.commit_failures = declare.counter(
            "agentlink_gateway_commit_failures_total",
            "Calls whose settlement could not be written (the reaper gives them back).",
        )
        self.admissions_taken_back = declare.counter(
            "agentlink_gateway_admissions_taken_back_total",
            "Redis Cluster: admissions given back and decided again because the agent record,"
            " read beside them, had changed (gateway/sharded_admission.py).",
        )
        self.commit_retries = declare.counter(
            "agentlink_gateway_commit_retries_total",
            "Settlement attempts repeated because Redis was away (gateway/settlement.py).",
        )

    def child(self, metric: _Metric, *values: str) -> _Metric:
        """`metric.labels(*values)`, looked up once: prometheus-client checks the values and
        takes a lock on every `labels()` call, a few µs each, several times per call. The
        label sets are bounded (see above), so this map is too."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found
