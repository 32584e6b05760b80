"""All SQL of the agents domain."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from common.db import DbConnection, fetch_one, fetch_optional
from common.knowledge.records import KNOWLEDGE_RECORD

_AGENT_COLUMNS = f"""id, creator_id, name, description, category, status, config_encrypted,
                    price_per_call, version, total_calls, average_rating, review_count,
                    created_at, updated_at, published_at, {KNOWLEDGE_RECORD}"""
_VERSION_COLUMNS = """version, name, description, category, price_per_call, created_at,
                      config_encrypted"""


async def insert_agent(
    connection: DbConnection,
    *,
    agent_id: str,
    creator_id: str,
    name: str,
    description: str | None,
    category: str | None,
    envelope: bytes,
    key_id: str,
    price: Decimal,
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        f"""INSERT INTO agents (id, creator_id, name, description, category, status,
                                config_encrypted, config_key_id, price_per_call, version)
            VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, 1)
            RETURNING {_AGENT_COLUMNS}""",  # noqa: S608 - fixed column list
        agent_id,
        creator_id,
        name,
        description,
        category,
        envelope,
        key_id,
        price,
    )


@dataclass(frozen=True, slots=True)
class Version:
    """One agent version as stored: its number, sealed config and listing."""

    number: int
    envelope: bytes
    key_id: str
    price: Decimal
    name: str
    description: str | None
    category: str | None

    def columns(self) -> tuple[object, ...]:
        """In the order both version statements bind them ($2..$8)."""
        return (self.number, self.envelope, self.key_id, self.price, self.name,
                self.description, self.category)  # fmt: skip


async def insert_version(connection: DbConnection, agent_id: str, version: Version) -> None:
    await connection.execute(
        """INSERT INTO agent_versions (agent_id, version, config_encrypted, config_key_id,
                                       price_per_call, name, description, category)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        agent_id,
        *version.columns(),
    )


async def agent(
    connection: DbConnection, agent_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    """The agent row; `for_update` locks it until the transaction ends, so changes to one
    agent serialise."""
    lock = " FOR UPDATE" if for_update else ""
    return await fetch_optional(
        connection,
        f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = $1{lock}",  # noqa: S608 - constants
        agent_id,
    )


async def set_current_version(
    connection: DbConnection, agent_id: str, version: Version
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        f"""UPDATE agents
            SET version = $2, config_encrypted = $3, config_key_id = $4, price_per_call = $5,
                name = $6, description = $7, category = $8
            WHERE id = $1
            RETURNING {_AGENT_COLUMNS}""",  # noqa: S608 - fixed column list
        agent_id,
        *version.columns(),
    )


async def set_status(connection: DbConnection, agent_id: str, status: str) -> asyncpg.Record:
    """Set the status; the first publication stamps published_at, later ones keep it."""
    return await fetch_one(
        connection,
        f"""UPDATE agents
            SET status = $2,
                published_at = CASE WHEN $2 = 'active' THEN coalesce(published_at, now())
                                    ELSE published_at END
            WHERE id = $1
            RETURNING {_AGENT_COLUMNS}""",  # noqa: S608 - fixed column list
        agent_id,
        status,
    )


async def agents_of(
    connection: DbConnection, creator_id: str, status: str | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    records: list[asyncpg.Record] = await connection.fetch(
        f"""SELECT {_AGENT_COLUMNS} FROM agents
            WHERE creator_id = $1 AND ($2::text IS NULL OR status = $2)
            ORDER BY created_at DESC, id DESC
            LIMIT $3 OFFSET $4""",  # noqa: S608 - fixed column list
        creator_id,
        status,
        limit,
        offset,
    )
    total: int = await connection.fetchval(
        "SELECT count(*) FROM agents WHERE creator_id = $1 AND ($2::text IS NULL OR status = $2)",
        creator_id,
        status,
    )
    return records, total


async def versions(
    connection: DbConnection, agent_id: str, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    records: list[asyncpg.Record] = await connection.fetch(
        """SELECT version, name, price_per_call, created_at FROM agent_versions
           WHERE agent_id = $1 ORDER BY version DESC LIMIT $2 OFFSET $3""",
        agent_id,
        limit,
        offset,
    )
    total: int = await connection.fetchval(
        "SELECT count(*) FROM agent_versions WHERE agent_id = $1", agent_id
    )
    return records, total


async def version(connection: DbConnection, agent_id: str, number: int) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        f"SELECT {_VERSION_COLUMNS} FROM agent_versions WHERE agent_id = $1 AND version = $2",  # noqa: S608
        agent_id,
        number,
    )


async def knowledge_file_ids(
    connection: DbConnection, agent_id: str, file_ids: list[str]
) -> set[str]:
    """Which of `file_ids` are files of this agent's knowledge base."""
    rows = await connection.fetch(
        "SELECT id::text AS id FROM knowledge_files WHERE agent_id = $1 AND id = ANY($2::uuid[])",
        agent_id,
        file_ids,
    )
    return {str(row["id"]) for row in rows}
