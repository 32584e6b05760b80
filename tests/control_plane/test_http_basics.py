"""Cross-cutting HTTP behaviour of the control plane: CORS from settings, request ids on
every response, the body size limit."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.asgi import ErrorEnvelopeMiddleware, Receive, Scope, Send
from common.http_errors import envelope_exception_handlers
from control_plane.api import build_plain_route
from control_plane.routes import INFRA_ROUTES, PUBLIC_OPERATIONS
from control_plane.state import ControlPlaneState

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


async def test_error_answers_carry_the_cors_headers(control_url: str) -> None:
    async with httpx.AsyncClient(base_url=control_url) as client:
        error = await client.get("/api/v1/creators/me", headers={"Origin": ALLOWED})
    assert error.status_code == 401
    assert error.json()["error"]["code"] == "40101"
    assert error.headers["access-control-allow-origin"] == ALLOWED
    assert error.headers["x-request-id"]


async def test_a_plain_route_off_the_public_list_needs_a_token(
    control_state: ControlPlaneState,
) -> None:
    async def secret(request: Request) -> Response:
        return JSONResponse({"secret": True})

    app = Starlette(
        routes=[build_plain_route("GET", "/internal", secret, public=False)],
        middleware=[Middleware(ErrorEnvelopeMiddleware)],
        exception_handlers=envelope_exception_handlers(),
    )

    async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = {"control": control_state, "request_id": "r-1"}
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=with_state)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        anonymous = await client.get("/internal")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "40101"


def test_every_infrastructure_route_is_on_the_public_list() -> None:
    assert {(method, path) for method, path, _ in INFRA_ROUTES} <= PUBLIC_OPERATIONS
