"""Access tokens already issued end at once (issue 9, item 12): logout, logout everywhere,
refresh-token reuse and a role change bump `users.token_generation`, and every authenticated
request checks the token's `gen`, type and role against the user's record (Redis, else
Postgres). Over real HTTP, on a control plane on the single node and one on the Valkey cluster
(REDIS_CLUSTER): the write-through of the user record reaches the user's shard either way."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from common import keyspace
from common.domain import AdminRole, UserType
from control_plane.auth import sessions
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import decode_access_token, issue_access_token
from control_plane.user_record_sync import sync_user_records
from tests.control_plane.api_client import admin_token, assert_error, bearer, register
from tests.control_plane.conftest import Backend
from tests.factories import set_rate_tier, set_user_status
from tests.processes import TEST_JWT_SECRET

ME = "/api/v1/developers/me"
ADMIN_USERS = "/api/v1/admin/users"


async def status_of(client: httpx.AsyncClient, token: str, path: str = ME) -> int:
    return (await client.get(path, headers=bearer(token))).status_code


async def refreshed(client: httpx.AsyncClient, refresh_token: str) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_logout_ends_the_access_tokens_already_issued(backend: Backend) -> None:
    client = backend.http
    session = await register(client)
    other_device = await register_again(client, session)
    assert await status_of(client, session["access_token"]) == 200
    out = await client.post("/api/v1/auth/logout", headers=bearer(session["access_token"]),
                            json={"refresh_token": session["refresh_token"]})  # fmt: skip
    assert out.status_code == 204
    ended = await client.get(ME, headers=bearer(session["access_token"]))
    assert_error(ended, 401, "40101")
    # The other device's access token ended too; its refresh token still gets a fresh one.
    assert await status_of(client, other_device["access"]) == 401
    fresh = await refreshed(client, other_device["refresh"])
    assert await status_of(client, fresh["access_token"]) == 200
    assert decode_access_token(TEST_JWT_SECRET, fresh["access_token"]).token_generation == 1


async def register_again(client: httpx.AsyncClient, session: dict[str, Any]) -> dict[str, str]:
    """A second login of the same account (another device): its own refresh family."""
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": session["user"]["email"], "password": "correct horse 1"},
    )
    assert response.status_code == 200, response.text
    return {"access": response.json()["access_token"], "refresh": response.json()["refresh_token"]}


async def test_logout_everywhere_ends_every_access_token(backend: Backend) -> None:
    client = backend.http
    session = await register(client)
    second = await register_again(client, session)
    out = await client.post("/api/v1/auth/logout-all", headers=bearer(second["access"]))
    assert out.status_code == 204
    for token in (session["access_token"], second["access"]):
        assert_error(await client.get(ME, headers=bearer(token)), 401, "40101")
    for refresh in (session["refresh_token"], second["refresh"]):
        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert_error(response, 401, "40101")


async def test_refresh_token_reuse_ends_the_thiefs_access_token(
    backend: Backend,
) -> None:
    """A stolen refresh token used by the thief first: when the owner's copy is replayed the
    family dies, and the access token the thief got from it stops working at once."""
    client = backend.http
    session = await register(client)
    thief = await refreshed(client, session["refresh_token"])
    assert await status_of(client, thief["access_token"]) == 200
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert_error(replay, 401, "40101")
    assert_error(await client.get(ME, headers=bearer(thief["access_token"])), 401, "40101")
    assert_error(await client.get(ME, headers=bearer(session["access_token"])), 401, "40101")


async def test_a_demoted_admin_loses_admin_access_at_once(
    backend: Backend, db_pool: asyncpg.Pool
) -> None:
    client, redis = backend.http, backend.redis
    user_id, token = await admin_token(db_pool, AdminRole.SUPER_ADMIN)
    assert await status_of(client, token, ADMIN_USERS) == 200
    async with db_pool.acquire() as connection, connection.transaction():
        assert await sessions.change_role(
            connection, redis, user_id, user_type=UserType.ADMIN, admin_role=AdminRole.SUPPORT
        )
    record = await redis.hgetall(keyspace.user_record(7, user_id))
    assert record[b"role"] == b"support"
    assert record[b"gen"] == b"1"
    assert_error(await client.get(ADMIN_USERS, headers=bearer(token)), 401, "40101")
    # A token for the new role (as a refresh would issue it) has only support's permissions.
    support = issue_access_token(
        TEST_JWT_SECRET,
        Principal(user_id, UserType.ADMIN, AdminRole.SUPPORT, 7, token_generation=1),
        ttl_s=900,
    )
    assert await status_of(client, support, ADMIN_USERS) == 200
    system = await client.get("/api/v1/admin/system/health", headers=bearer(support))
    assert system.status_code == 403


async def test_a_role_changed_in_sql_ends_tokens_through_postgres(
    backend: Backend, db_pool: asyncpg.Pool
) -> None:
    """With no cached record, Postgres answers: the trigger bumped the generation, and even a
    token that claims the new role is refused until it carries the new generation."""
    client, redis = backend.http, backend.redis
    user_id, token = await admin_token(db_pool, AdminRole.MODERATOR)
    await redis.delete(keyspace.user_record(7, user_id))
    await db_pool.execute("UPDATE users SET admin_role = 'support' WHERE id = $1", user_id)
    assert await db_pool.fetchval(
        "SELECT token_generation FROM users WHERE id = $1", user_id
    ) == 1  # fmt: skip
    assert_error(await client.get(ADMIN_USERS, headers=bearer(token)), 401, "40101")
    stale_gen = Principal(user_id, UserType.ADMIN, AdminRole.SUPPORT, 7)
    stale = issue_access_token(TEST_JWT_SECRET, stale_gen, ttl_s=900)
    assert_error(await client.get(ADMIN_USERS, headers=bearer(stale)), 401, "40101")
    # An unrelated update does not bump it.
    await set_rate_tier(db_pool, user_id, "paid")
    assert await db_pool.fetchval(
        "SELECT token_generation FROM users WHERE id = $1", user_id
    ) == 1  # fmt: skip


async def test_the_cached_record_is_what_is_checked(
    backend: Backend, db_pool: asyncpg.Pool
) -> None:
    """A complete user record answers without Postgres: a generation in it that the token
    does not carry is refused even though Postgres (not bumped here) would accept it."""
    client, redis = backend.http, backend.redis
    session = await register(client)
    user_id, shard = (
        session["user"]["id"],
        decode_access_token(TEST_JWT_SECRET, session["access_token"]).shard,
    )
    record = keyspace.user_record(shard, user_id)
    await redis.hset(
        record,
        mapping={"status": "active", "tier": "free", "type": "developer", "role": "", "gen": "0"},
    )
    assert await status_of(client, session["access_token"]) == 200
    await redis.hset(record, "gen", "5")
    assert_error(await client.get(ME, headers=bearer(session["access_token"])), 401, "40101")
    await redis.hdel(record, "gen")  # an incomplete record: Postgres answers (generation 0)
    assert await status_of(client, session["access_token"]) == 200
    await redis.delete(record)


async def test_a_role_changed_in_sql_reaches_a_cached_record_through_the_worker_job(
    backend: Backend, db_pool: asyncpg.Pool
) -> None:
    """The stale record (issue 9): a record written with the session fields keeps answering
    for the old role after a plain-SQL change, until the worker's user_record_sync job
    (queued by migrations/0017's trigger) rewrites it from the row."""
    client, redis = backend.http, backend.redis
    user_id, token = await admin_token(db_pool, AdminRole.MODERATOR)
    record = keyspace.user_record(7, user_id)
    async with db_pool.acquire() as connection, connection.transaction():
        await sessions.change_role(  # a record with session fields, as our code writes it
            connection, redis, user_id, user_type=UserType.ADMIN, admin_role=AdminRole.MODERATOR
        )
    await sync_user_records(db_pool, redis)  # drain what that change queued
    token = issue_access_token(
        TEST_JWT_SECRET,
        Principal(user_id, UserType.ADMIN, AdminRole.MODERATOR, 7, token_generation=0),
        ttl_s=900,
    )
    assert await status_of(client, token, ADMIN_USERS) == 200  # gen 0: no bump, same role

    await db_pool.execute("UPDATE users SET admin_role = 'support' WHERE id = $1", user_id)
    queued = "SELECT count(*) FROM user_record_sync WHERE user_id = $1"
    assert await db_pool.fetchval(queued, user_id) == 1
    # Until the job runs, the cached record still says moderator, generation 0.
    assert await redis.hmget(record, ["role", "gen"]) == [b"moderator", b"0"]
    assert await status_of(client, token, ADMIN_USERS) == 200

    await sync_user_records(db_pool, redis)
    assert await redis.hmget(record, ["role", "gen", "status"]) == [b"support", b"1", b"active"]
    assert_error(await client.get(ADMIN_USERS, headers=bearer(token)), 401, "40101")
    assert await db_pool.fetchval(queued, user_id) == 0

    # A suspension in plain SQL reaches the record too; an unrelated column queues nothing.
    await set_user_status(db_pool, user_id, "suspended")
    await sync_user_records(db_pool, redis)
    assert await redis.hget(record, "status") == b"suspended"
    await db_pool.execute("UPDATE users SET email_verified = true WHERE id = $1", user_id)
    assert await db_pool.fetchval(queued, user_id) == 0
