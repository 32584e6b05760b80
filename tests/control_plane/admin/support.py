"""Helpers the admin tests share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from common.domain import UserType
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import issue_access_token
from tests.control_plane.api_client import bearer
from tests.processes import TEST_JWT_SECRET


@dataclass(frozen=True)
class Admin:
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def chat(http: httpx.AsyncClient, gateway: str, agent_id: str, key: str) -> httpx.Response:
    return await http.post(
        f"{gateway}/proxy/v1/agents/{agent_id}/chat",
        json={"messages": [{"role": "user", "content": "hello"}]},
        headers={"X-AgentLink-Key": key},
    )


async def audit_rows(db: asyncpg.Pool, *, target_id: str, action: str | None = None) -> list[Any]:
    rows: list[Any] = await db.fetch(
        """SELECT * FROM audit_log WHERE target_id = $1 AND ($2::text IS NULL OR action = $2)
           ORDER BY id""",
        target_id,
        action,
    )
    return rows


def user_token(user_id: str, user_type: UserType, shard: int) -> str:
    """An access token for a user made through the factories (not through the API)."""
    principal = Principal(user_id, user_type, None, shard)
    return issue_access_token(TEST_JWT_SECRET, principal, ttl_s=900)
