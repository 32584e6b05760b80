"""Helpers the admin tests share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis_asyncio

from common.domain import UserType
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import issue_access_token
from tests.control_plane.api_client import Admin, assert_error
from tests.factories import Account, Agent
from tests.processes import TEST_JWT_SECRET


@dataclass(frozen=True)
class Gateways:
    """The session's two gateways (`gateway_pair`), an HTTP client to call them, and the Redis
    they share: what an admin action must change on every instance at once."""

    urls: list[str]
    http: httpx.AsyncClient
    redis: redis_asyncio.Redis

    async def chat(self, url: str, agent_id: str, key: str) -> httpx.Response:
        return await self.http.post(
            f"{url}/proxy/v1/agents/{agent_id}/chat",
            json={"messages": [{"role": "user", "content": "hello"}]},
            headers={"X-AgentLink-Key": key},
        )

    async def chat_each(self, agent_id: str, key: str) -> list[httpx.Response]:
        """One call on each gateway in turn."""
        return [await self.chat(url, agent_id, key) for url in self.urls]

    async def assert_refused(self, agent_id: str, key: str, status: int, code: str) -> None:
        """Every gateway refuses the call with this error."""
        for response in await self.chat_each(agent_id, key):
            assert_error(response, status, code)

    async def statuses(self, account: Account, agent: Agent) -> list[int]:
        responses = await self.chat_each(agent.agent_id, account.key.plaintext)
        return [response.status_code for response in responses]


async def put_status(
    client: httpx.AsyncClient, url: str, admin: Admin, body: dict[str, str]
) -> dict[str, Any]:
    """An admin's status change (of a user or an agent) that must succeed; its body."""
    response = await client.put(f"{url}/status", headers=admin.headers, json=body)
    assert response.status_code == 200, response.text
    changed: dict[str, Any] = response.json()
    return changed


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
