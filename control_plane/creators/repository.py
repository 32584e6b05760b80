"""All SQL of the creators domain."""

from __future__ import annotations

import asyncpg

from common.db import DbConnection, fetch_optional

_PROFILE = """SELECT u.id, u.email, u.wallet_address, p.display_name, p.bio, p.avatar_url,
                     p.verified, p.total_earnings, p.pending_earnings, p.created_at,
                     greatest(p.updated_at, u.updated_at) AS updated_at
              FROM users u JOIN creator_profiles p ON p.user_id = u.id
              WHERE u.id = $1"""


async def profile(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    return await fetch_optional(connection, _PROFILE, user_id)


_PROFILE_COLUMNS = frozenset({"display_name", "bio", "avatar_url"})


async def update_profile(
    connection: DbConnection, user_id: str, changes: dict[str, str | None]
) -> bool:
    """Set the given profile columns; the names come from a fixed list, never from a caller."""
    columns = list(changes)
    if not columns or not _PROFILE_COLUMNS.issuperset(columns):
        raise ValueError("unknown or no profile columns")
    assignments = ", ".join(f"{column} = ${index}" for index, column in enumerate(columns, 2))
    status: str = await connection.execute(
        f"UPDATE creator_profiles SET {assignments} WHERE user_id = $1",  # noqa: S608 - fixed names
        user_id,
        *changes.values(),
    )
    return status != "UPDATE 0"


async def set_wallet_address(connection: DbConnection, user_id: str, address: str) -> bool:
    status: str = await connection.execute(
        "UPDATE users SET wallet_address = $2 WHERE id = $1 AND user_type = 'creator'",
        user_id,
        address,
    )
    return status != "UPDATE 0"
