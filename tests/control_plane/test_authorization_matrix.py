"""The authorization matrix: every non-admin /api/v1 operation, every kind of caller, owner
and non-owner. (Admin operations have their own matrix in tests/control_plane/admin.)

Deny by default: anonymous callers get 401 except on the public list; a caller of the wrong
type gets 403 `40301`; a creator touching another creator's agent gets 403 `40302`; a
developer touching another developer's key gets 404 (existence is not revealed)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from common.domain import AdminRole, UserType
from control_plane.api import ApiRoute
from control_plane.routes import API_ROUTES, PUBLIC_OPERATIONS
from tests.control_plane.api_client import admin_token, bearer, register

USER_ROUTES = [route for route in API_ROUTES if not route.path.startswith("/api/v1/admin")]
# Public operations that check credentials of their own: 401 is their answer to bad ones.
CREDENTIAL_CHECKS = {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh")}
CALLERS = ("anonymous", "creator", "developer", "admin")
# Both end the caller's access tokens (token generation), so they get sessions of their own.
SESSION_ENDERS = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/logout-all")}

# A body each operation accepts, so that authorization, not validation, decides.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/auth/register"): {"email": "matrix@example.test", "password": "x" * 12,
                                        "user_type": "developer"},
    ("POST", "/api/v1/auth/login"): {"email": "nobody@example.test", "password": "x"},
    ("POST", "/api/v1/auth/refresh"): {"refresh_token": "rt_" + "x" * 40},
    ("POST", "/api/v1/auth/logout"): {"refresh_token": "rt_" + "x" * 40},
    ("PUT", "/api/v1/creators/me"): {"bio": "matrix"},
    ("PUT", "/api/v1/creators/me/wallet"): {"wallet_address": "0x" + "a" * 40},
    ("POST", "/api/v1/agents"): {
        "name": "Matrix", "price_per_call": "0.01",
        "config": {"system_prompt": "matrix prompt", "provider": "openai", "model": "m"},
    },
    ("PUT", "/api/v1/agents/{agent_id}"): {"description": "changed by the matrix"},
    ("POST", "/api/v1/developers/keys"): {"name": "matrix"},
    ("POST", "/api/v1/reviews/agents/{agent_id}"): {"rating": 5, "content": "matrix"},
    ("POST", "/api/v1/payments/checkout"): {"package": "starter", "provider": "stripe"},
}  # fmt: skip


@pytest.fixture(scope="module")
def world(control_url: str, database_url: str) -> dict[str, Any]:
    """Two creators (A owns an agent), two developers (A owns a key), an admin."""
    import asyncio

    import asyncpg

    async def build() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=control_url) as client:
            creator_a, creator_b = (
                await register(client, "creator"),
                await register(client, "creator"),
            )
            developer_a = await register(client, "developer")
            developer_b = await register(client, "developer")
            agent = await client.post("/api/v1/agents", headers=bearer(creator_a["access_token"]),
                                      json=BODIES[("POST", "/api/v1/agents")])  # fmt: skip
            key = await client.post("/api/v1/developers/keys", json={"name": "a's key"},
                                    headers=bearer(developer_a["access_token"]))  # fmt: skip
            # Users whose sessions the logout routes end, so the tokens the other routes use
            # stay valid whatever order the tests run in.
            ended = {operation: {caller: (await register(client, caller))["access_token"]
                                 for caller in ("creator", "developer")}
                     for operation in SESSION_ENDERS}  # fmt: skip
        db = await asyncpg.connect(database_url)
        try:
            _, admin = await admin_token(db, AdminRole.SUPER_ADMIN)  # type: ignore[arg-type]
            for operation in SESSION_ENDERS:
                _, ended[operation]["admin"] = await admin_token(db, AdminRole.SUPER_ADMIN)  # type: ignore[arg-type]
        finally:
            await db.close()
        return {
            "ended": ended,
            "tokens": {
                "creator": creator_a["access_token"], "other creator": creator_b["access_token"],
                "developer": developer_a["access_token"],
                "other developer": developer_b["access_token"], "admin": admin,
            },
            "params": {"agent_id": agent.json()["id"], "key_id": key.json()["id"], "version": "1",
                       "payment_id": "00000000-0000-4000-8000-000000000000",
                       "file_id": "00000000-0000-4000-8000-000000000000",
                       "webhook_id": "00000000-0000-4000-8000-000000000000",
                       "token_id": "0" * 64},
        }  # fmt: skip

    return asyncio.run(build())


def _request(
    client: httpx.Client, route: ApiRoute, world: dict[str, Any], caller: str
) -> httpx.Response:
    path = route.path.format(**world["params"])
    tokens = world["ended"].get(route.operation, world["tokens"])
    headers = bearer(tokens[caller]) if caller != "anonymous" else {}
    body = BODIES.get(route.operation)
    return client.request(route.method, path, headers=headers,
                          json=body if route.body is not None else None)  # fmt: skip


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", USER_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_deny_by_default_and_by_user_type(
    route: ApiRoute, caller: str, world: dict[str, Any], control_url: str
) -> None:
    with httpx.Client(base_url=control_url) as client:
        response = _request(client, route, world, caller)
    code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
    public = route.operation in PUBLIC_OPERATIONS
    if route.operation in CREDENTIAL_CHECKS:
        assert (response.status_code, code) == (401, "40101"), response.text  # bad credentials
        return
    if caller == "anonymous":
        if public:
            assert response.status_code != 401, response.text
        else:
            assert (response.status_code, code) == (401, "40101"), response.text
        return
    if not public and UserType(caller) not in route.user_types:
        assert (response.status_code, code) == (403, "40301"), response.text
    else:
        assert code not in ("40101", "40102", "40301"), response.text
        assert response.status_code < 500, response.text


OWNED_AGENT_ROUTES = [
    route for route in USER_ROUTES
    if route.path.startswith("/api/v1/agents/{agent_id}")
    and route.operation not in PUBLIC_OPERATIONS  # the public proof of ownership
]  # fmt: skip


@pytest.mark.parametrize("route", OWNED_AGENT_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_a_creator_cannot_touch_another_creators_agent(
    route: ApiRoute, world: dict[str, Any], control_url: str
) -> None:
    with httpx.Client(base_url=control_url) as client:
        response = _request(client, route, world, "other creator")
        owner = _request(client, route, world, "creator") if route.method == "GET" else None
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "40302"
    assert "matrix prompt" not in response.text
    if owner is not None:
        assert owner.status_code == 200, owner.text


def test_a_developer_cannot_revoke_another_developers_key(
    world: dict[str, Any], control_url: str
) -> None:
    owner = bearer(world["tokens"]["developer"])
    with httpx.Client(base_url=control_url) as client:
        key_id = client.post("/api/v1/developers/keys", headers=owner,
                             json={"name": "not yours"}).json()["id"]  # fmt: skip
        other = bearer(world["tokens"]["other developer"])
        response = client.delete(f"/api/v1/developers/keys/{key_id}", headers=other)
        keys = client.get("/api/v1/developers/keys", headers=owner).json()["keys"]
    assert response.status_code == 404
    assert [key["revoked"] for key in keys if key["id"] == key_id] == [False]
