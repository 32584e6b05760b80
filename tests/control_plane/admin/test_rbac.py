"""The admin API's access control over real HTTP: every admin route by every kind of caller.

Two layers:
1. The route table itself matches the seed: each admin route declares exactly the seed
   permission its place in the seed's /api/v1/admin tree implies, is for admins only, and the
   code's role table is the seed's table verbatim.
2. The matrix: expectations are generated from each route's `permission` and the seed's role
   table (written out here, not imported), then every (route, caller) pair is called:
   allowed → the handler ran (2xx, or the domain's own 404 for a made-up id); not allowed →
   403 `40301`; no token → 401 `40101`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from common.domain import AdminRole, UserType
from control_plane.api import ApiRoute
from control_plane.auth.principal import ROLE_PERMISSIONS, Permission
from control_plane.routes import API_ROUTES
from tests.control_plane.api_client import admin_token, assert_error, bearer, register

# The seed's RBAC table ("Admin API" / 权限控制), verbatim.
SEED_ROLES: dict[str, frozenset[str]] = {
    "super_admin": frozenset({"users:view", "users:manage", "agents:view", "agents:manage",
                              "content:moderate", "payments:manage", "system:admin"}),
    "moderator": frozenset({"users:view", "agents:view", "content:moderate"}),
    "support": frozenset({"users:view", "agents:view"}),
}  # fmt: skip

A = "/api/v1/admin"
# The seed's admin route tree, each route with the permission it needs.
SEED_ROUTES: dict[tuple[str, str], str] = {
    ("GET", f"{A}/dashboard/stats"): "users:view",
    ("GET", f"{A}/users"): "users:view",
    ("GET", f"{A}/users/{{user_id}}"): "users:view",
    ("PUT", f"{A}/users/{{user_id}}/status"): "users:manage",
    ("DELETE", f"{A}/users/{{user_id}}"): "users:manage",
    ("GET", f"{A}/agents"): "agents:view",
    ("GET", f"{A}/agents/{{agent_id}}"): "agents:view",
    ("PUT", f"{A}/agents/{{agent_id}}/status"): "agents:manage",
    ("GET", f"{A}/moderation/queue"): "content:moderate",
    ("POST", f"{A}/moderation/reviews/{{review_id}}/approve"): "content:moderate",
    ("POST", f"{A}/moderation/reviews/{{review_id}}/reject"): "content:moderate",
    ("GET", f"{A}/system/health"): "system:admin",
    ("GET", f"{A}/system/metrics"): "system:admin",
    ("POST", f"{A}/system/cache/clear"): "system:admin",
    # Beyond the seed's tree: platform configuration and the audit trail are system:admin.
    ("GET", f"{A}/feature-flags"): "system:admin",
    ("PUT", f"{A}/feature-flags/{{key}}"): "system:admin",
    ("GET", f"{A}/audit-log"): "system:admin",
    # A user's rate tier (issue 13) is managing the user, like their status.
    ("PUT", f"{A}/users/{{user_id}}/rate-tier"): "users:manage",
    # So is changing their type or admin role (issue 9).
    ("PUT", f"{A}/users/{{user_id}}/role"): "users:manage",
}
# The seed's settlement routes belong to the settlements domain; when they exist they must be
# payments:manage.
# Money in (issue 10): payments and manual quota credits are payments:manage too.
PAYMENT_ROUTES: dict[tuple[str, str], str] = {
    ("GET", f"{A}/payments"): "payments:manage",
    ("GET", f"{A}/payments/{{payment_id}}"): "payments:manage",
    ("POST", f"{A}/payments/{{payment_id}}/refund"): "payments:manage",
    ("POST", f"{A}/users/{{user_id}}/quota-credits"): "payments:manage",
}
SEED_SETTLEMENT_ROUTES: dict[tuple[str, str], str] = {
    ("GET", f"{A}/settlements/pending"): "payments:manage",
    ("POST", f"{A}/settlements/trigger"): "payments:manage",
    ("GET", f"{A}/settlements/history"): "payments:manage",
}

ADMIN_ROUTES: list[ApiRoute] = [route for route in API_ROUTES if route.path.startswith(A + "/")]

# What an allowed caller sends, per mutating route: harmless requests (made-up ids, an unknown
# flag) that reach the handler and come back as the domain's own 404, or a safe 200.
_MISSING = "00000000-0000-4000-8000-000000000000"
REQUESTS: dict[tuple[str, str], tuple[dict[str, Any] | None, int, str | None]] = {
    ("PUT", f"{A}/users/{{user_id}}/status"): ({"status": "active"}, 404, "40402"),
    ("PUT", f"{A}/users/{{user_id}}/rate-tier"): ({"rate_tier": "paid"}, 404, "40402"),
    ("PUT", f"{A}/users/{{user_id}}/role"): ({"user_type": "developer"}, 404, "40402"),
    ("DELETE", f"{A}/users/{{user_id}}"): (None, 404, "40402"),
    ("GET", f"{A}/users/{{user_id}}"): (None, 404, "40402"),
    ("GET", f"{A}/agents/{{agent_id}}"): (None, 404, "40401"),
    ("PUT", f"{A}/agents/{{agent_id}}/status"): ({"status": "inactive"}, 404, "40401"),
    ("POST", f"{A}/moderation/reviews/{{review_id}}/approve"): (None, 404, "40404"),
    ("POST", f"{A}/moderation/reviews/{{review_id}}/reject"): (None, 404, "40404"),
    ("PUT", f"{A}/feature-flags/{{key}}"): ({"enabled": True}, 404, "40404"),
    ("POST", f"{A}/system/cache/clear"): (None, 200, None),
    ("GET", f"{A}/payments/{{payment_id}}"): (None, 404, "40404"),
    ("POST", f"{A}/payments/{{payment_id}}/refund"): ({"reason": "rbac"}, 404, "40404"),
    ("POST", f"{A}/users/{{user_id}}/quota-credits"): (
        {"units": 1, "reason": "rbac"},
        404,
        "40402",
    ),
    # A creator id that is not one: refused before anything is settled.
    ("POST", f"{A}/settlements/trigger"): ({"creator_id": "not-a-uuid"}, 400, "40002"),
}
_PARAM = re.compile(r"{([a-z_]+)}")

CALLERS = ["super_admin", "moderator", "support", "admin_without_role", "developer", "creator",
           "anonymous"]  # fmt: skip


def expected(route: ApiRoute, caller: str) -> str:
    """ "allowed", "forbidden" or "unauthenticated", from the route's declared permission."""
    if caller == "anonymous":
        return "unauthenticated"
    assert route.permission is not None
    if route.permission.value in SEED_ROLES.get(caller, frozenset()):
        return "allowed"
    return "forbidden"


def test_the_code_role_table_is_the_seed_table() -> None:
    assert {role.value: {p.value for p in perms} for role, perms in ROLE_PERMISSIONS.items()} == {
        role: set(perms) for role, perms in SEED_ROLES.items()
    }
    assert {p.value for p in Permission} == set().union(*SEED_ROLES.values())


def test_every_admin_route_declares_the_seed_permission_and_is_admin_only() -> None:
    table = {route.operation: route for route in ADMIN_ROUTES}
    assert len(table) == len(ADMIN_ROUTES), "an admin route is declared twice"
    known = SEED_ROUTES | SEED_SETTLEMENT_ROUTES | PAYMENT_ROUTES
    for operation, route in table.items():
        assert operation in known, f"{operation} is not in the seed's admin tree"
        assert route.permission is not None, f"{operation} has no permission"
        assert route.permission.value == known[operation], operation
        assert route.user_types == frozenset({UserType.ADMIN}), operation
    missing = set(SEED_ROUTES) - set(table)
    assert not missing, f"admin routes not implemented: {missing}"


@pytest_asyncio.fixture(scope="module")
async def callers(control_url: str, db_pool: asyncpg.Pool) -> AsyncIterator[dict[str, str]]:
    tokens: dict[str, str] = {}
    for role in AdminRole:
        _, tokens[role.value] = await admin_token(db_pool, role)
    # An admin whose role was never set has no permission at all (fails closed).
    _, tokens["admin_without_role"] = await admin_token(db_pool, None)
    async with httpx.AsyncClient(base_url=control_url) as client:
        tokens["developer"] = (await register(client, "developer"))["access_token"]
        tokens["creator"] = (await register(client, "creator"))["access_token"]
    yield tokens


def _url(route: ApiRoute) -> str:
    def fill(match: re.Match[str]) -> str:
        return "no_such_flag" if match.group(1) == "key" else _MISSING

    return _PARAM.sub(fill, route.path)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=lambda route: f"{route.method} {route.path}")
async def test_rbac_matrix(
    route: ApiRoute, caller: str, callers: dict[str, str], control_url: str
) -> None:
    outcome = expected(route, caller)
    body, status, code = REQUESTS.get(route.operation, (None, 200, None))
    if outcome == "allowed" and route.method != "GET" and route.operation not in REQUESTS:
        pytest.skip("no harmless request known for this mutating route")
    headers = bearer(callers[caller]) if caller != "anonymous" else {}
    async with httpx.AsyncClient(base_url=control_url, timeout=15) as client:
        response = await client.request(route.method, _url(route), json=body, headers=headers)
    if outcome == "unauthenticated":
        assert_error(response, 401, "40101")
    elif outcome == "forbidden":
        assert_error(response, 403, "40301")
    elif code is None:
        assert response.status_code == status, response.text
    else:
        assert_error(response, status, code)
