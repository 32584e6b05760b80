"""Helpers for control-plane API tests: accounts made through the real API, tokens minted
for users made through the database, and the envelope assertions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from common.domain import AdminRole, UserType
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import issue_access_token
from tests.factories import make_admin
from tests.processes import TEST_JWT_SECRET


def fresh_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.test"


async def register(
    client: httpx.AsyncClient,
    user_type: str = "developer",
    *,
    password: str = "correct horse 1",
    email: str | None = None,
) -> dict[str, Any]:
    """A new account through the API: its session (tokens and user)."""
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email or fresh_email(), "password": password, "user_type": user_type},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def admin_token(db: asyncpg.Pool, role: AdminRole | None) -> tuple[str, str]:
    """A new admin (`make_admin`) on shard 7, where tests look for their Redis user record,
    and an access token of theirs."""
    admin = await make_admin(db, role, shard=7)
    principal = Principal(admin.user_id, UserType.ADMIN, role, admin.shard)
    return admin.user_id, issue_access_token(TEST_JWT_SECRET, principal, ttl_s=900)


async def role_tokens(control_url: str, db: asyncpg.Pool | asyncpg.Connection) -> dict[str, str]:
    """Access tokens of a new creator, a new developer (both through the API) and a new super
    admin, by role name."""
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as client:
        creator = await register(client, "creator")
        developer = await register(client, "developer")
    _, admin = await admin_token(db, AdminRole.SUPER_ADMIN)  # type: ignore[arg-type]
    return {
        "creator": creator["access_token"],
        "developer": developer["access_token"],
        "admin": admin,
    }


@dataclass(frozen=True)
class Admin:
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def admin_session(db: asyncpg.Pool, role: AdminRole | None) -> Admin:
    """`admin_token`'s admin, with the Authorization header of their token."""
    return Admin(*await admin_token(db, role))


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body
