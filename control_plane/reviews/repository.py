"""All SQL of the reviews domain."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from common.db import DbConnection, fetch_all, fetch_one, fetch_optional
from control_plane.marketplace.pagination import NEWEST_FIRST_AFTER


async def agent_summary(connection: DbConnection, agent_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        "SELECT id, status, average_rating, review_count FROM agents WHERE id = $1",
        agent_id,
    )


async def review_exists(connection: DbConnection, agent_id: str, user_id: str) -> bool:
    exists: bool = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM reviews WHERE agent_id = $1 AND user_id = $2)",
        agent_id,
        user_id,
    )
    return exists


async def successful_calls(
    connection: DbConnection, user_id: str, agent_id: str, *, enough: int
) -> int:
    """The user's billable, successful calls to the agent, counted up to `enough` (the
    answer only has to tell "enough" from "not yet", so the scan stops there)."""
    count: int = await connection.fetchval(
        """SELECT count(*) FROM (
               SELECT 1 FROM call_logs
               WHERE user_id = $1 AND agent_id = $2 AND billable AND status = 'success'
               LIMIT $3
           ) AS calls""",
        user_id,
        agent_id,
        enough,
    )
    return count


async def insert_review(
    connection: DbConnection, *, agent_id: str, user_id: str, rating: int, content: str | None
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        """INSERT INTO reviews (agent_id, user_id, rating, content)
           VALUES ($1, $2, $3, $4)
           RETURNING id, agent_id, rating, content, status, created_at""",
        agent_id,
        user_id,
        rating,
        content,
    )


async def approved_reviews(
    connection: DbConnection, agent_id: str, *, limit: int, after: tuple[datetime, str] | None
) -> list[asyncpg.Record]:
    """Newest first (index reviews_agent_approved_idx), up to `limit + 1` rows."""
    clause = "" if after is None else NEWEST_FIRST_AFTER
    return await fetch_all(
        connection,
        f"""SELECT id, rating, content, created_at FROM reviews
            WHERE agent_id = $1 AND status = 'approved' {clause}
            ORDER BY created_at DESC, id LIMIT $2""",  # noqa: S608 - constant clauses
        agent_id,
        limit + 1,
        *(after or ()),
    )


# Moderation. Lock order, always: the agent row, then the review row. Every moderation of
# one agent's reviews therefore runs one at a time, and none can deadlock another.


async def review_agent_id(connection: DbConnection, review_id: str) -> str | None:
    agent_id = await connection.fetchval("SELECT agent_id FROM reviews WHERE id = $1", review_id)
    return None if agent_id is None else str(agent_id)


async def lock_agent(connection: DbConnection, agent_id: str) -> None:
    # NO KEY UPDATE: enough to serialise rating updates, and it does not block the KEY SHARE
    # locks that inserting a review (its foreign key) takes on the agent.
    await connection.execute("SELECT 1 FROM agents WHERE id = $1 FOR NO KEY UPDATE", agent_id)


async def review_for_update(connection: DbConnection, review_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        """SELECT id, agent_id, user_id, rating, content, status, moderated_by, moderated_at,
                  created_at
           FROM reviews WHERE id = $1 FOR NO KEY UPDATE""",
        review_id,
    )


async def set_review_status(
    connection: DbConnection, review_id: str, status: str, moderator_id: str
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        """UPDATE reviews SET status = $2, moderated_by = $3, moderated_at = now()
           WHERE id = $1
           RETURNING id, agent_id, user_id, rating, content, status, moderated_by,
                     moderated_at, created_at""",
        review_id,
        status,
        moderator_id,
    )


async def recompute_agent_rating(connection: DbConnection, agent_id: str) -> asyncpg.Record:
    """Set the agent's aggregate from its approved reviews. Called with the agent row locked:
    this statement's snapshot, taken after the lock was granted, sees every moderation of the
    agent that committed before, so the result is exact however many run concurrently."""
    return await fetch_one(
        connection,
        """UPDATE agents a SET rating_sum = s.total, review_count = s.count
           FROM (SELECT coalesce(sum(rating), 0) AS total, count(*) AS count
                 FROM reviews WHERE agent_id = $1 AND status = 'approved') AS s
           WHERE a.id = $1
           RETURNING a.rating_sum, a.review_count, a.average_rating""",
        agent_id,
    )


async def agent_rating(connection: DbConnection, agent_id: str) -> asyncpg.Record:
    return await fetch_one(
        connection,
        "SELECT rating_sum, review_count, average_rating FROM agents WHERE id = $1",
        agent_id,
    )


async def pending_reviews(
    connection: DbConnection, *, limit: int, after: tuple[datetime, str] | None
) -> list[asyncpg.Record]:
    """The moderation queue, oldest first (index reviews_pending_idx), up to `limit + 1`."""
    if after is None:
        return await fetch_all(
            connection,
            """SELECT r.id, r.agent_id, a.name AS agent_name, r.user_id, r.rating, r.content,
                      r.created_at
               FROM reviews r JOIN agents a ON a.id = r.agent_id
               WHERE r.status = 'pending'
               ORDER BY r.created_at, r.id LIMIT $1""",
            limit + 1,
        )
    rows = await connection.fetch(
        """SELECT r.id, r.agent_id, a.name AS agent_name, r.user_id, r.rating, r.content,
                  r.created_at
           FROM reviews r JOIN agents a ON a.id = r.agent_id
           WHERE r.status = 'pending'
             AND (r.created_at > $2 OR (r.created_at = $2 AND r.id > $3::uuid))
           ORDER BY r.created_at, r.id LIMIT $1""",
        limit + 1,
        after[0],
        after[1],
    )
    return rows
