"""schemathesis against the control plane's own OpenAPI document: generated requests for
every operation, as anonymous callers and as each kind of user, never get a 5xx, and every
error is the documented envelope."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from common.domain import AdminRole
from control_plane.routes import OPENAPI
from tests.control_plane.api_client import admin_token

schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def tokens(control_url: str, database_url: str) -> dict[str, str]:
    import httpx

    from tests.control_plane.api_client import fresh_email

    found: dict[str, str] = {}
    with httpx.Client(base_url=control_url) as client:
        for user_type in ("creator", "developer"):
            body = {"email": fresh_email(), "password": "fuzzing password", "user_type": user_type}
            found[user_type] = client.post("/api/v1/auth/register", json=body).json()[
                "access_token"
            ]

    async def make_admin() -> str:
        db = await asyncpg.connect(database_url)
        try:
            _, token = await admin_token(db, AdminRole.SUPER_ADMIN)  # type: ignore[arg-type]
        finally:
            await db.close()
        return token

    found["admin"] = asyncio.run(make_admin())
    return found


def _token_for(path: str, tokens: dict[str, str]) -> str:
    if path.startswith("/api/v1/admin"):
        return tokens["admin"]
    if path.startswith(("/api/v1/developers", "/api/v1/reviews")):
        return tokens["developer"]
    return tokens["creator"]


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_with_a_server_error(
    case: schemathesis.Case, control_url: str, tokens: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {_token_for(case.path, tokens)}"}
    response = case.call(base_url=control_url, headers=headers)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "request_id"}
        assert len(body["error"]["code"]) == 5
        assert response.headers["x-request-id"] == [body["request_id"]]
