"""All SQL of the auth domain."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from common.db import DbConnection, fetch_one, fetch_optional


async def insert_user(
    connection: DbConnection,
    *,
    email: str,
    password_hash: str,
    user_type: str,
    shard: int,
    rate_tier: str = "free",
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        """INSERT INTO users (email, password_hash, user_type, redis_shard, rate_tier)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, email, user_type, admin_role, status, redis_shard, token_generation""",
        email,
        password_hash,
        user_type,
        shard,
        rate_tier,
    )


async def insert_creator_profile(connection: DbConnection, user_id: str, display_name: str) -> None:
    await connection.execute(
        "INSERT INTO creator_profiles (user_id, display_name) VALUES ($1, $2)",
        user_id,
        display_name,
    )


async def insert_quota(
    connection: DbConnection, user_id: str, free_quota: int, *, total_quota: int = 0
) -> None:
    await connection.execute(
        "INSERT INTO quotas (user_id, free_quota, total_quota) VALUES ($1, $2, $3)",
        user_id,
        free_quota,
        total_quota,
    )


async def user_by_email(connection: DbConnection, email: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        """SELECT id, email, password_hash, user_type, admin_role, status, redis_shard,
                  token_generation
           FROM users WHERE lower(email) = $1""",
        email,
    )


async def user_by_id(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        """SELECT id, email, user_type, admin_role, status, redis_shard, token_generation
           FROM users WHERE id = $1""",
        user_id,
    )


async def update_password_hash(connection: DbConnection, user_id: str, new_hash: str) -> None:
    await connection.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, new_hash)


async def insert_refresh_token(
    connection: DbConnection,
    *,
    user_id: str,
    family_id: str,
    token_hash: str,
    expires_at: datetime,
) -> str:
    token_id = await connection.fetchval(
        """INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        user_id,
        family_id,
        token_hash,
        expires_at,
    )
    return str(token_id)


async def refresh_token_for_update(
    connection: DbConnection, token_hash: str
) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        """SELECT id, user_id, family_id, expires_at, revoked_at
           FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE""",
        token_hash,
    )


async def mark_replaced(connection: DbConnection, token_id: str, replaced_by: str) -> None:
    await connection.execute(
        "UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2 WHERE id = $1",
        token_id,
        replaced_by,
    )


async def revoke_family(connection: DbConnection, family_id: str) -> None:
    await connection.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )


async def revoke_user_families(connection: DbConnection, user_id: str) -> int:
    """Revoke every live refresh token of the user; returns how many."""
    status: str = await connection.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
    return int(status.rsplit(" ", 1)[1])
