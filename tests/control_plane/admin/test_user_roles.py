"""PUT /api/v1/admin/users/{id}/role over real HTTP: a super_admin changes a user's type or
admin role; the user's access tokens end at the next request (token generation) because the
Redis user record is written through with the new role and generation before commit; the
change is audited; the account rules and what a type change may not break hold."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import redis.asyncio as redis_asyncio

from common import keyspace
from common.domain import AdminRole
from tests.control_plane.admin.support import Admin, audit_rows
from tests.control_plane.api_client import admin_token, assert_error, bearer, register

U = "/api/v1/admin/users"


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> str:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_a_demoted_admin_is_cut_off_at_once_and_the_record_is_current(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis,
    super_admin: Admin,
) -> None:  # fmt: skip
    target_id, token = await admin_token(db_pool, AdminRole.MODERATOR)
    queue = "/api/v1/admin/moderation/queue"
    assert (await client.get(queue, headers=bearer(token))).status_code == 200
    record = keyspace.user_record(7, target_id)
    # A record the control plane wrote earlier (with the session fields of the old role).
    await redis.hset(record, mapping={"status": "active", "tier": "free", "type": "admin",
                                      "role": "moderator", "gen": "0"})  # fmt: skip
    body = {"user_type": "admin", "admin_role": "support", "reason": "left the review team"}
    response = await client.put(f"{U}/{target_id}/role", headers=super_admin.headers, json=body)
    assert response.status_code == 200, response.text
    assert (response.json()["user_type"], response.json()["admin_role"]) == ("admin", "support")

    fields = await redis.hgetall(record)
    assert (fields[b"role"], fields[b"gen"], fields[b"type"]) == (b"support", b"1", b"admin")
    row = await db_pool.fetchrow(
        "SELECT admin_role, token_generation FROM users WHERE id = $1", target_id
    )
    assert (row["admin_role"], row["token_generation"]) == ("support", 1)
    assert_error(await client.get(queue, headers=bearer(token)), 401, "40101")

    rows = await audit_rows(db_pool, target_id=target_id, action="user.role")
    assert len(rows) == 1
    assert rows[0]["details"] == {
        "before": {"user_type": "admin", "admin_role": "moderator"},
        "after": {"user_type": "admin", "admin_role": "support"},
        "reason": "left the review team",
    }
    assert str(rows[0]["actor_id"]) == super_admin.user_id

    # The same role again changes nothing: no new generation, no audit row.
    again = await client.put(f"{U}/{target_id}/role", headers=super_admin.headers, json=body)
    assert again.status_code == 200, again.text
    assert await redis.hget(record, "gen") == b"1"
    assert len(await audit_rows(db_pool, target_id=target_id, action="user.role")) == 1


async def test_a_developer_made_admin_gets_admin_access_only_with_a_fresh_token(
    client: httpx.AsyncClient, super_admin: Admin
) -> None:
    session = await register(client, "developer")
    user_id, token = session["user"]["id"], session["access_token"]
    assert (await client.get("/api/v1/developers/me", headers=bearer(token))).status_code == 200
    body = {"user_type": "admin", "admin_role": "support"}
    response = await client.put(f"{U}/{user_id}/role", headers=super_admin.headers, json=body)
    assert response.status_code == 200, response.text
    assert_error(await client.get("/api/v1/developers/me", headers=bearer(token)), 401, "40101")
    admin = await _refresh(client, session["refresh_token"])
    assert (await client.get(U, headers=bearer(admin))).status_code == 200  # users:view
    assert_error(await client.get("/api/v1/admin/audit-log", headers=bearer(admin)), 403, "40301")
    # And back: a developer again, with no admin access.
    back = await client.put(f"{U}/{user_id}/role", headers=super_admin.headers,
                            json={"user_type": "developer"})  # fmt: skip
    assert back.status_code == 200, back.text
    assert back.json()["admin_role"] is None
    assert_error(await client.get(U, headers=bearer(admin)), 401, "40101")


async def test_the_rules_of_a_role_change(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, super_admin: Admin, moderator: Admin
) -> None:
    developer = (await register(client, "developer"))["user"]["id"]
    creator_session = await register(client, "creator")
    creator = creator_session["user"]["id"]
    url = f"{U}/{developer}/role"
    make_support = {"user_type": "admin", "admin_role": "support"}
    # users:manage only; never one's own account.
    assert_error(await client.put(url, headers=moderator.headers, json=make_support), 403, "40301")
    own = f"{U}/{super_admin.user_id}/role"
    assert_error(await client.put(own, headers=super_admin.headers, json=make_support),
                 403, "40301")  # fmt: skip
    # Only admins have a role, and an admin needs one; no other types.
    for bad in (
        {"user_type": "developer", "admin_role": "support"},
        {"user_type": "admin"},
        {"user_type": "owner"},
        {"user_type": "admin", "admin_role": "root"},
        {},
    ):
        assert_error(await client.put(url, headers=super_admin.headers, json=bad), 400, "40002")
    missing = f"{U}/{uuid.uuid4()}/role"
    assert_error(await client.put(missing, headers=super_admin.headers, json=make_support),
                 404, "40402")  # fmt: skip
    assert_error(await client.put(f"{U}/not-a-uuid/role", headers=super_admin.headers,
                                  json=make_support), 404, "40402")  # fmt: skip
    # A developer has no creator profile; a creator with an agent keeps it.
    to_creator = {"user_type": "creator"}
    assert_error(await client.put(url, headers=super_admin.headers, json=to_creator), 409, "40901")
    agent = await client.post("/api/v1/agents", headers=bearer(creator_session["access_token"]),
                              json={"name": "Kept", "price_per_call": "0.01",
                                    "config": {"system_prompt": "p", "provider": "openai",
                                               "model": "m"}})  # fmt: skip
    assert agent.status_code == 201, agent.text
    assert_error(await client.put(f"{U}/{creator}/role", headers=super_admin.headers,
                                  json={"user_type": "developer"}), 409, "40901")  # fmt: skip
    # A closed account has no role to change.
    assert (await client.delete(f"{U}/{developer}", headers=super_admin.headers)).is_success
    assert_error(await client.put(url, headers=super_admin.headers, json=make_support),
                 409, "40901")  # fmt: skip
    assert await audit_rows(db_pool, target_id=developer, action="user.role") == []
