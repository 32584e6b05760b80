"""Both apps answer liveness, readiness and metrics over real HTTP against the real servers."""

from __future__ import annotations

import httpx

from devstack.servers import free_port
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from tests.conftest import Servers
from tests.support import serve


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_SOCKET_TIMEOUT_S": "0.5",
        "AGENTLINK_ENCRYPTION_KEYS": "t1:" + "A" * 43 + "=",
        "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": "t1",
    }


def test_gateway_health_readiness_and_metrics(servers: Servers, database_url: str) -> None:
    app = create_gateway(GatewaySettings.from_env(_env(database_url, servers.redis_url)))
    with serve(app) as base_url:
        health = httpx.get(f"{base_url}/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert health.headers["x-request-id"]
        ready = httpx.get(f"{base_url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"redis": "ok"}
        metrics = httpx.get(f"{base_url}/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        missing = httpx.get(f"{base_url}/nope", headers={"X-Request-ID": "trace-me"})
        assert missing.status_code == 404
        assert missing.json()["request_id"] == "trace-me"


def test_gateway_is_not_ready_without_redis(database_url: str) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    app = create_gateway(GatewaySettings.from_env(_env(database_url, dead_redis)))
    with serve(app) as base_url:
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        ready = httpx.get(f"{base_url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"redis": "unavailable"}


def test_control_plane_readiness_checks_postgres_and_redis(control_url: str) -> None:
    ready = httpx.get(f"{control_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
