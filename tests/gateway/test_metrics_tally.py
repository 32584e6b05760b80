"""The hot path's metric tallies (gateway/metrics.py) hand prometheus-client exactly what it
would have counted itself, whenever they are flushed."""

from __future__ import annotations

import asyncio
import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics

ROUTE = "/proxy/v1/agents/{agent_id}/chat"
# Any latency, and the buckets' own bounds (each belongs to its own bucket, not the next).
amounts = st.floats(min_value=0, max_value=100) | st.sampled_from([0.001, 0.005, 0.1, 1.0, 60.0])


def samples(metrics: GatewayMetrics) -> dict[tuple[str, str], float]:
    """Every sample but the creation times (the two registries were made apart)."""
    families = text_string_to_metric_families(generate_latest(metrics.registry).decode())
    return {
        (sample.name, repr(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@given(batches=st.lists(st.lists(st.tuples(amounts, st.sampled_from(["2xx", "4xx"]))), max_size=4))
def test_tallied_updates_flushed_in_any_batches_equal_direct_updates(
    batches: list[list[tuple[float, str]]],
) -> None:
    """Property: for any calls (latency, status class), flushed after any batches, the
    exposition is the one prometheus-client gives when each update goes to it directly."""
    tallied, direct = GatewayMetrics(CollectorRegistry()), GatewayMetrics(CollectorRegistry())
    for batch in batches:
        for seconds, status_class in batch:
            tallied.child(tallied.requests, ROUTE, status_class).inc()
            tallied.child(tallied.request_seconds, ROUTE, "false").observe(seconds)
            direct.requests.labels(ROUTE, status_class).inc()
            direct.request_seconds.labels(ROUTE, "false").observe(seconds)
        tallied.flush()
        got, expected = samples(tallied), samples(direct)
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            if name[0].endswith("_sum"):  # added in another order: equal up to rounding
                assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), name
            else:
                assert got[name] == value, name


def test_the_in_flight_gauge_is_the_tallied_level_at_the_flush() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.calls_in_flight += 3
    metrics.calls_in_flight -= 1
    assert metrics.registry.get_sample_value("agentlink_gateway_in_flight_requests") == 0
    metrics.flush()
    assert metrics.registry.get_sample_value("agentlink_gateway_in_flight_requests") == 2


async def test_flushing_flushes_on_its_own_and_at_the_end() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    name, labels = "agentlink_gateway_requests_total", {"route": ROUTE, "status_class": "2xx"}
    async with metrics.flushing(every_s=0.01):
        metrics.child(metrics.requests, ROUTE, "2xx").inc()
        for _ in range(100):
            if metrics.registry.get_sample_value(name, labels) == 1:
                break
            await asyncio.sleep(0.01)
        assert metrics.registry.get_sample_value(name, labels) == 1
        metrics.child(metrics.requests, ROUTE, "2xx").inc()
    assert metrics.registry.get_sample_value(name, labels) == 2
