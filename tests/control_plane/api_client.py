"""Helpers for control-plane API tests: accounts made through the real API, tokens minted
for users made through the database, and the envelope assertions."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from common.domain import AdminRole, UserType
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import issue_access_token
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


async def admin_token(db: asyncpg.Pool, role: AdminRole) -> tuple[str, str]:
    """An admin made directly in the database (admins cannot self-register)."""
    user_id = await db.fetchval(
        """INSERT INTO users (email, password_hash, user_type, admin_role, redis_shard)
           VALUES ($1, 'x', 'admin', $2, 7) RETURNING id""",
        fresh_email(),
        role.value,
    )
    principal = Principal(str(user_id), UserType.ADMIN, role, 7)
    return str(user_id), issue_access_token(TEST_JWT_SECRET, principal, ttl_s=900)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body
