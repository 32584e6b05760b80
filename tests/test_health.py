"""Both apps answer liveness, readiness and metrics over real HTTP against the real servers."""

from __future__ import annotations

import httpx

from devstack.servers import free_port
from tests.processes import gateway_env, serve_gateway


def test_gateway_health_readiness_and_metrics(gateway_url: str) -> None:
    health = httpx.get(f"{gateway_url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert health.headers["x-request-id"]
    ready = httpx.get(f"{gateway_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"redis": "ok"}
    metrics = httpx.get(f"{gateway_url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    missing = httpx.get(f"{gateway_url}/nope", headers={"X-Request-ID": "trace-me"})
    assert missing.status_code == 404
    assert missing.json()["request_id"] == "trace-me"


def test_gateway_is_not_ready_without_redis(database_url: str) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = gateway_env(database_url, dead_redis, REDIS_SOCKET_TIMEOUT_S="0.5")
    with serve_gateway(env) as base_url:
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        ready = httpx.get(f"{base_url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"redis": "unavailable"}


def test_control_plane_readiness_checks_postgres_and_redis(control_url: str) -> None:
    ready = httpx.get(f"{control_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
