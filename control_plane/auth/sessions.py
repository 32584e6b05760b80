"""Ending every access token a user holds, at once: the token generation.

Access tokens are stateless JWTs; each carries `users.token_generation` as its `gen` claim and
every authenticated request compares it with the user's record (control_plane/auth/tokens.py).
Bumping the generation therefore cuts off every access token already issued, on the next
request. Logout, logout everywhere and refresh-token reuse bump it (auth/service.py), and so
does any change of role (a trigger, migrations/0009, whatever makes the change).

The bump is written through to the user's Redis record inside the caller's transaction, as
every gateway record is (control_plane/gateway_sync.py): if Redis refuses, nothing changes and
the caller answers 503. A role change made outside `change_role` (plain SQL) still bumps the
generation in Postgres, and queues the user for the worker, which rewrites the cached record
within USER_RECORD_SYNC_INTERVAL_S (control_plane/user_record_sync.py, migrations/0017).
"""

from __future__ import annotations

from common.db import DbConnection, fetch_optional
from common.domain import AdminRole, UserType
from common.records import UserSession
from common.redis_store import RedisClient
from control_plane import gateway_sync

_RECORD_COLUMNS = "redis_shard, status, rate_tier, user_type, admin_role, token_generation"


async def end_access_tokens(connection: DbConnection, redis: RedisClient, user_id: str) -> None:
    """Bump the user's token generation (call inside the transaction that ends the sessions)."""
    await _update_written_through(
        connection, redis, user_id, "token_generation = token_generation + 1"
    )


async def change_role(
    connection: DbConnection,
    redis: RedisClient,
    user_id: str,
    *,
    user_type: UserType,
    admin_role: AdminRole | None,
) -> bool:
    """Give the user another type or admin role; their access tokens end (the trigger bumps
    the generation). False if there is no such user. Call inside a transaction."""
    return await _update_written_through(
        connection, redis, user_id, "user_type = $2, admin_role = $3",
        user_type.value, admin_role.value if admin_role else None,
    )  # fmt: skip


async def _update_written_through(
    connection: DbConnection, redis: RedisClient, user_id: str, assignments: str, *args: object
) -> bool:
    """`UPDATE users SET <assignments>` for `user_id` ($1; `args` from $2), then the user's
    Redis record rewritten from the updated row. False if there is no such user."""
    await gateway_sync.hold_write_through(connection)
    row = await fetch_optional(
        connection,
        f"UPDATE users SET {assignments} WHERE id = $1 RETURNING {_RECORD_COLUMNS}",  # noqa: S608
        user_id,
        *args,
    )
    if row is None:
        return False
    session = UserSession(row["user_type"], row["admin_role"], row["token_generation"])
    await gateway_sync.write_user(
        redis, shard=row["redis_shard"], user_id=user_id, status=row["status"],
        tier=row["rate_tier"], session=session,
    )  # fmt: skip
    return True
