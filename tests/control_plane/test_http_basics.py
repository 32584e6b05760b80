"""Cross-cutting HTTP behaviour of the control plane: CORS from settings, request ids on
every response, the body size limit."""

from __future__ import annotations

import httpx

ALLOWED = "https://app.agentlink.test"  # CORS_ALLOW_ORIGINS in tests/conftest.py


async def test_cors_preflight_allows_only_the_configured_origins(control_url: str) -> None:
    async with httpx.AsyncClient(base_url=control_url) as client:
        allowed = await client.options(
            "/api/v1/agents",
            headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "Authorization, Content-Type"},
        )  # fmt: skip
        other = await client.options(
            "/api/v1/agents",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in other.headers


async def test_every_response_has_a_request_id_and_errors_echo_it(control_url: str) -> None:
    async with httpx.AsyncClient(base_url=control_url) as client:
        ok = await client.get("/healthz")
        error = await client.get("/api/v1/creators/me", headers={"X-Request-ID": "cp-trace-1"})
    assert ok.headers["x-request-id"]
    assert error.headers["x-request-id"] == "cp-trace-1"
    assert error.json()["request_id"] == "cp-trace-1"


async def test_oversized_bodies_are_refused_with_413(control_url: str) -> None:
    async with httpx.AsyncClient(base_url=control_url) as client:
        response = await client.post(
            "/api/v1/auth/login",
            content=b"{" + b" " * 10_485_761 + b"}",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "41301"
