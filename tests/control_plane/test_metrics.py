"""The control plane's /metrics over real HTTP: requests by route template (never an id),
method and status class, latency, auth failures; and the worker's job metrics."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from control_plane.webhooks.delivery import DeliveryRun
from control_plane.worker import PeriodicJob, count_deliveries, run_periodically
from control_plane.worker_metrics import WorkerMetrics
from tests.control_plane.api_client import bearer, register


async def _samples(
    client: httpx.AsyncClient,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_by_route_template_with_auth_failures(
    control_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=control_url) as client:
        before = await _samples(client)
        auth = bearer((await register(client, "developer"))["access_token"])
        agent = str(uuid.uuid4())
        for _ in range(3):
            assert (await client.get(f"/api/v1/marketplace/agents/{agent}")).status_code == 404
        assert (await client.get("/api/v1/developers/keys")).status_code == 401
        assert (await client.get("/api/v1/developers/keys", headers=auth)).status_code == 200
        assert (await client.get("/api/v1/creators/me", headers=auth)).status_code == 403
        assert (await client.get("/no/such/route")).status_code == 404
        after = await _samples(client)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    requests = "agentlink_control_requests_total"
    route = "/api/v1/marketplace/agents/{agent_id}"
    assert grew(requests, route=route, method="GET", status_class="4xx") == 3
    assert grew(requests, route="/api/v1/developers/keys", method="GET", status_class="4xx") == 1
    assert grew(requests, route="/api/v1/developers/keys", method="GET", status_class="2xx") == 1
    assert grew(requests, route="/api/v1/auth/register", method="POST", status_class="2xx") == 1
    assert grew(requests, route="unmatched", method="GET", status_class="4xx") == 1
    assert grew("agentlink_control_auth_failures_total", status="401") == 1
    assert grew("agentlink_control_auth_failures_total", status="403") == 1
    count = "agentlink_control_request_duration_seconds_count"
    assert grew(count, route=route, method="GET") == 3
    # Bounded labels: no id ever becomes a label value.
    assert not [key for key in after if agent in str(key)]


async def test_worker_jobs_are_counted_and_timed_with_failures_and_deliveries() -> None:
    metrics = WorkerMetrics()
    stop = asyncio.Event()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            stop.set()
        if runs == 2:
            raise RuntimeError("a transient failure")

    await run_periodically(PeriodicJob("flaky", 0.01, flaky), stop, metrics)
    registry = metrics.registry
    assert registry.get_sample_value("agentlink_worker_job_runs_total", {"job": "flaky"}) == 3
    assert registry.get_sample_value("agentlink_worker_job_failures_total", {"job": "flaky"}) == 1
    assert registry.get_sample_value("agentlink_worker_job_seconds_count", {"job": "flaky"}) == 3

    count_deliveries(metrics, DeliveryRun(delivered=4, failed=1))
    deliveries = "agentlink_worker_webhook_deliveries_total"
    assert registry.get_sample_value(deliveries, {"outcome": "delivered"}) == 4
    assert registry.get_sample_value(deliveries, {"outcome": "failed"}) == 1
    assert registry.get_sample_value(deliveries, {"outcome": "retried"}) == 0
