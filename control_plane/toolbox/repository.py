"""All SQL of the toolbox (table: migration 0013)."""

from __future__ import annotations

import asyncpg

from common.db import DbConnection


async def listing(connection: DbConnection, user_id: str) -> list[asyncpg.Record]:
    """The toolbox in the order agents were added, with each agent's public columns (an
    agent that is no longer active stays in the toolbox and is shown as such: the gateway
    lists only active ones)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT a.id, a.name, a.description, a.price_per_call, a.status, t.added_at
           FROM developer_toolbox t JOIN agents a ON a.id = t.agent_id
           WHERE t.user_id = $1
           ORDER BY t.added_at, a.id""",
        user_id,
    )
    return rows


async def lock_owner(connection: DbConnection, user_id: str) -> None:
    """One toolbox change per developer at a time, so the size cap holds under concurrency."""
    await connection.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id)


async def size(connection: DbConnection, user_id: str) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM developer_toolbox WHERE user_id = $1", user_id
    )
    return count


async def agent_status(connection: DbConnection, agent_id: str) -> str | None:
    status: str | None = await connection.fetchval(
        "SELECT status FROM agents WHERE id = $1", agent_id
    )
    return status


async def contains(connection: DbConnection, user_id: str, agent_id: str) -> bool:
    found: bool = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM developer_toolbox WHERE user_id = $1 AND agent_id = $2)",
        user_id,
        agent_id,
    )
    return found


async def add(connection: DbConnection, user_id: str, agent_id: str) -> bool:
    """True if the agent was added, False if it was there already."""
    added = await connection.fetchval(
        """INSERT INTO developer_toolbox (user_id, agent_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        user_id,
        agent_id,
    )
    return bool(added)


async def remove(connection: DbConnection, user_id: str, agent_id: str) -> bool:
    removed = await connection.fetchval(
        "DELETE FROM developer_toolbox WHERE user_id = $1 AND agent_id = $2 RETURNING true",
        user_id,
        agent_id,
    )
    return bool(removed)
