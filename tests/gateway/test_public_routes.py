"""Deny by default on the gateway: only the public paths answer without an API key, and the
route table refuses a route that is neither public nor checks a key."""

from __future__ import annotations

import httpx
import pytest
from starlette.responses import JSONResponse, Response

from gateway.routes import PUBLIC_PATHS, ROUTES, route


async def _open(request: object) -> Response:
    return JSONResponse({"open": True})


def test_a_route_that_is_not_public_must_check_an_api_key() -> None:
    with pytest.raises(ValueError, match="/proxy/v1/internal"):
        route("/proxy/v1/internal", _open, methods=["GET"])
    assert route("/healthz", _open, methods=["GET"]).path == "/healthz"


def test_the_public_paths_are_the_routes_without_a_key_check() -> None:
    paths = {r.path for r in ROUTES}  # type: ignore[attr-defined]
    assert paths >= PUBLIC_PATHS
    assert {"/proxy/v1/agents/{agent_id}/chat"} <= paths - PUBLIC_PATHS


async def test_public_paths_answer_without_a_key_and_chat_does_not(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url) as client:
        for path in PUBLIC_PATHS:
            assert (await client.get(path)).status_code == 200, path
        chat = await client.post(
            "/proxy/v1/agents/00000000-0000-0000-0000-000000000000/chat", json={}
        )
    assert chat.status_code == 401
    assert chat.json()["error"]["code"] == "40103"


async def test_a_wrong_method_is_405_with_every_method_of_the_path(gateway_url: str) -> None:
    agent = "00000000-0000-4000-8000-000000000000"
    async with httpx.AsyncClient(base_url=gateway_url) as client:
        for entry in ROUTES:
            methods = set(entry.methods or ())  # type: ignore[attr-defined]
            method = next(m for m in ("PUT", "PATCH", "POST", "GET") if m not in methods)
            path = entry.path.replace("{agent_id}", agent).replace("{model}", "m")  # type: ignore[attr-defined]
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert {m.strip() for m in response.headers["allow"].split(",")} == methods, path
            assert response.json()["error"]["code"] == "40501"
