"""All SQL of the feature-flag domain."""

from __future__ import annotations

import asyncpg

from common.db import DbConnection

_COLUMNS = "key, enabled, description, updated_by, updated_at"


async def all_flags(connection: DbConnection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {_COLUMNS} FROM feature_flags ORDER BY key"  # noqa: S608 - constant columns
    )
    return rows


async def flag_for_update(connection: DbConnection, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM feature_flags WHERE key = $1 FOR UPDATE",  # noqa: S608
        key,
    )
    return row


async def set_enabled(
    connection: DbConnection, key: str, *, enabled: bool, updated_by: str
) -> asyncpg.Record:
    row: asyncpg.Record | None = await connection.fetchrow(
        f"""UPDATE feature_flags SET enabled = $2, updated_by = $3 WHERE key = $1
            RETURNING {_COLUMNS}""",  # noqa: S608 - constant columns
        key,
        enabled,
        updated_by,
    )
    assert row is not None  # the caller locked the row first
    return row
