"""The asyncpg pool, created once in each app's lifespan and passed to whoever needs it."""

from __future__ import annotations

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from common.knowledge.vectors import use_binary_vectors

# What a query raises when Postgres cannot serve it (nothing listening, refused, the connection
# lost): the gateway answers these 503 `50302` where it reads, never an unhandled 500.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


async def _init_connection(connection: asyncpg.Connection) -> None:
    # JSON columns come back as Python objects and go in from them, via orjson.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _init_with_vectors(connection: asyncpg.Connection) -> None:
    await _init_connection(connection)
    await use_binary_vectors(connection)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The reset of a pool whose sessions need none (asyncpg has rolled back already)."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
    reset_sessions: bool = True,
    binary_vectors: bool = False,
) -> asyncpg.Pool:
    """`reset_sessions=False`: for a process whose statements leave no session state behind
    (no SET, LISTEN, advisory lock or open cursor; an open transaction is still rolled back).
    asyncpg's default reset is one more round trip per borrowed connection, and four
    statements Postgres parses and runs each time (SELECT pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL).

    `binary_vectors=True`: pgvector's `vector` goes both ways in its binary form, as the
    knowledge retrieval sends it (common/knowledge/vectors.py `use_binary_vectors`)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_with_vectors if binary_vectors else _init_connection,
        command_timeout=30,
        # The statement cache is per connection; keep it, it is what makes asyncpg fast.
        max_inactive_connection_lifetime=300,
        server_settings=server_settings,
        reset=None if reset_sessions else _keep_session,
    )
    assert pool is not None  # create_pool only returns None when used as an async context
    return pool


# What repository functions accept: a plain connection or one borrowed from the pool.
DbConnection = asyncpg.Connection | PoolConnectionProxy
# What the fetch helpers accept: those, or the pool itself for a one-statement read.
Queryable = DbConnection | asyncpg.Pool


class MissingRowError(RuntimeError):
    """A query that always returns a row returned none: a bug, not a client's mistake."""


async def fetch_optional(connection: Queryable, query: str, *args: object) -> asyncpg.Record | None:
    """The first row of the query, or None when it has none (a lookup by id)."""
    record: asyncpg.Record | None = await connection.fetchrow(query, *args)
    return record


async def fetch_one(connection: Queryable, query: str, *args: object) -> asyncpg.Record:
    """The row of a query that always has one: INSERT/UPDATE ... RETURNING on a row the
    transaction holds, an aggregate without GROUP BY."""
    record: asyncpg.Record | None = await connection.fetchrow(query, *args)
    if record is None:
        raise MissingRowError(query.split(None, 1)[0])
    return record


async def fetch_all(connection: Queryable, query: str, *args: object) -> list[asyncpg.Record]:
    """Every row of the query, in its order."""
    records: list[asyncpg.Record] = await connection.fetch(query, *args)
    return records
