"""All SQL of the feature-flag domain."""

from __future__ import annotations

import asyncpg

from common.db import DbConnection, fetch_all, fetch_one, fetch_optional

_COLUMNS = "key, enabled, description, updated_by, updated_at"


async def all_flags(connection: DbConnection) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        f"SELECT {_COLUMNS} FROM feature_flags ORDER BY key",  # noqa: S608 - constant columns
    )


async def flag_for_update(connection: DbConnection, key: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        f"SELECT {_COLUMNS} FROM feature_flags WHERE key = $1 FOR UPDATE",  # noqa: S608
        key,
    )


async def set_enabled(
    connection: DbConnection, key: str, *, enabled: bool, updated_by: str
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        f"""UPDATE feature_flags SET enabled = $2, updated_by = $3 WHERE key = $1
            RETURNING {_COLUMNS}""",  # noqa: S608 - constant columns
        key,
        enabled,
        updated_by,
    )
