"""Prometheus exposition that is correct with one process or many.

With several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR: each process then writes its
samples to files there and `/metrics` (whichever worker answers) aggregates them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition body and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
        return generate_latest(aggregate), CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_LATEST


GaugeMode = Literal[
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent",
    "livemostrecent",
]  # fmt: skip


class MetricSet:
    """One app's metric declarations on its registry, a call each: name, help, label names,
    and the label values known up front, created at once so they are exported (as 0) before
    their first event."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(
        self, name: str, documentation: str, labels: Sequence[str] = (), *,
        known: Iterable[str] = (),
    ) -> Counter:  # fmt: skip
        counter = Counter(name, documentation, labels, registry=self.registry)
        for value in known:
            counter.labels(value)
        return counter

    def histogram(
        self, name: str, documentation: str, labels: Sequence[str] = (), *,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:  # fmt: skip
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def gauge(
        self, name: str, documentation: str, labels: Sequence[str] = (), *,
        mode: GaugeMode = "all",
    ) -> Gauge:  # fmt: skip
        """`mode`: how several processes' values add up (PROMETHEUS_MULTIPROC_DIR)."""
        return Gauge(name, documentation, labels, multiprocess_mode=mode, registry=self.registry)
