"""The gateway's Prometheus metrics. Labels are bounded sets only: route templates, provider,
model (the agents' configured models), status class, verdict. Never user, key or agent ids.

Built once per app on its own registry; with PROMETHEUS_MULTIPROC_DIR set, prometheus-client
writes samples to per-process files and `/metrics` aggregates them (common/metrics.py).

The per-call updates (`child`, `calls_in_flight`) are tallied in plain numbers and handed to
prometheus-client by `flush`: before each scrape this process answers, and every
`FLUSH_S` (`flushing`) for the scrapes another worker answers. prometheus-client takes a
lock per update, and with PROMETHEUS_MULTIPROC_DIR writes a memory-mapped file: ~7 µs per
JSON call in one process, ~24 µs with the files (micro-benchmark), against well under 1 µs
tallied. The event loop's thread alone touches the tallies.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_left
from collections.abc import AsyncIterator
from typing import overload

from prometheus_client import CollectorRegistry, Counter, Histogram

from common.metrics import MetricSet

FLUSH_S = 1.0
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._tallies: dict[tuple[Counter | Histogram, tuple[str, ...]], _Tally] = {}
        self.calls_in_flight = 0  # the in_flight gauge's value at the next flush
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

    @overload
    def child(self, metric: Counter, *values: str) -> CounterTally: ...
    @overload
    def child(self, metric: Histogram, *values: str) -> HistogramTally: ...
    def child(self, metric: Counter | Histogram, *values: str) -> _Tally:
        """The tally of `metric.labels(*values)`, made once: prometheus-client checks the
        values and takes a lock on every `labels()` call. The label sets are bounded (see
        above), so this map is too."""
        key = (metric, values)
        found = self._tallies.get(key)
        if found is None:
            labelled = metric.labels(*values)
            found = self._tallies[key] = (
                HistogramTally(labelled) if isinstance(labelled, Histogram)
                else CounterTally(labelled)
            )  # fmt: skip
        return found

    def flush(self) -> None:
        """Hand every tally to prometheus-client (the exposition reads it from there)."""
        self.in_flight.set(self.calls_in_flight)
        for tally in self._tallies.values():
            tally.flush()

    @contextlib.asynccontextmanager
    async def flushing(self, every_s: float = FLUSH_S) -> AsyncIterator[None]:
        """Flush every `every_s` while the body runs, and once more at its end."""

        async def flush_every() -> None:
            while True:
                await asyncio.sleep(every_s)
                self.flush()

        task = asyncio.create_task(flush_every())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.flush()


class CounterTally:
    """A labelled counter's increments since the last flush."""

    __slots__ = ("_count", "_counter")

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._count = 0.0

    def inc(self, amount: float = 1) -> None:
        self._count += amount

    def flush(self) -> None:
        if self._count:
            count, self._count = self._count, 0.0
            self._counter.inc(count)


class HistogramTally:
    """A labelled histogram's observations since the last flush, per bucket. Flushed into
    the histogram's own bucket and sum values (prometheus-client's `observe` does one value
    at a time; 0.26 keeps them in `_buckets`, `_sum`, by `_upper_bounds`)."""

    __slots__ = ("_bounds", "_counts", "_histogram", "_sum")

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._bounds: tuple[float, ...] = tuple(histogram._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        # The first bucket whose upper bound is >= amount, as observe() picks it.
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def flush(self) -> None:
        counts = self._counts
        if not any(counts):
            return
        histogram = self._histogram
        for value, count in zip(histogram._buckets, counts, strict=True):
            if count:
                value.inc(count)
        histogram._sum.inc(self._sum)
        self._counts = [0] * len(counts)
        self._sum = 0.0


_Tally = CounterTally | HistogramTally
