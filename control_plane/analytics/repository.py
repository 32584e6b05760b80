"""All SQL of creator analytics: reads of the rollup tables (migration 0007), each one index
range scan. Distinct developers over a range come from the developer sets: members whose
monthly day-mask meets the range's whole days, or whose daily hour-mask meets a partial day."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from common.db import DbConnection, fetch_all


async def creator_agents(
    connection: DbConnection, creator_id: str, agent_id: str | None
) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        """SELECT id, name FROM agents
           WHERE creator_id = $1 AND ($2::uuid IS NULL OR id = $2::uuid)""",
        creator_id,
        agent_id,
    )


# The rollup of one granularity: its table, and its bucket as a timestamptz.
_ROLLUPS = {
    False: ("usage_agent_daily", "day", "day::timestamp AT TIME ZONE 'UTC'"),
    True: ("usage_agent_hourly", "hour", "hour"),
}


async def buckets(
    connection: DbConnection, agent_ids: list[str], start: datetime, end: datetime, *, hourly: bool
) -> list[asyncpg.Record]:
    """The agents' rollup rows in [start, end), per UTC day or hour (`bucket`)."""
    table, column, bucket = _ROLLUPS[hourly]
    bounds: tuple[date | datetime, date | datetime] = (
        (start, end) if hourly else (start.date(), end.date())
    )
    return await fetch_all(
        connection,
        f"""SELECT agent_id, {bucket} AS bucket, calls, billable_calls, error_calls, revenue,
                   latency_histogram, developers
            FROM {table}
            WHERE agent_id = ANY($1::uuid[]) AND {column} >= $2 AND {column} < $3""",  # noqa: S608 - constant names
        agent_ids,
        *bounds,
    )


async def creator_developers_per_bucket(
    connection: DbConnection, creator_id: str, start: datetime, end: datetime, *, hourly: bool
) -> dict[datetime, int]:
    """Distinct developers of all the creator's agents, per day or hour."""
    if hourly:
        rows = await connection.fetch(
            """SELECT hour AS bucket, developers FROM usage_creator_hourly
               WHERE creator_id = $1 AND hour >= $2 AND hour < $3""",
            creator_id,
            start,
            end,
        )
    else:
        rows = await connection.fetch(
            """SELECT day::timestamp AT TIME ZONE 'UTC' AS bucket, developers
               FROM usage_creator_daily
               WHERE creator_id = $1 AND day >= $2 AND day < $3""",
            creator_id,
            start.date(),
            end.date(),
        )
    return {row["bucket"]: row["developers"] for row in rows}


# The sets of a range: (months, day masks) for its whole days, (days, hour masks) for its
# partial days; see service.range_masks.
Masks = tuple[list[date], list[int], list[date], list[int]]


async def agent_developers_in_range(
    connection: DbConnection, agent_ids: list[str], masks: Masks
) -> dict[str, int]:
    rows = await connection.fetch(
        """SELECT agent_id, count(*) AS developers FROM (
               SELECT p.agent_id, p.user_id FROM usage_agent_developers_monthly p
               JOIN unnest($2::date[], $3::int[]) AS m (month, mask) ON p.month = m.month
               WHERE p.agent_id = ANY($1::uuid[]) AND p.days & m.mask <> 0
               UNION
               SELECT p.agent_id, p.user_id FROM usage_agent_developers_daily p
               JOIN unnest($4::date[], $5::int[]) AS e (day, mask) ON p.day = e.day
               WHERE p.agent_id = ANY($1::uuid[]) AND p.hours & e.mask <> 0
           ) members GROUP BY agent_id""",  # UNION (not ALL): a hashed distinct, not a sort
        agent_ids,
        *masks,
    )
    return {str(row["agent_id"]): row["developers"] for row in rows}


async def creator_developers_in_range(
    connection: DbConnection, creator_id: str, masks: Masks
) -> int:
    count: int = await connection.fetchval(
        """SELECT count(*) FROM (
               SELECT p.user_id FROM usage_creator_developers_monthly p
               JOIN unnest($2::date[], $3::int[]) AS m (month, mask) ON p.month = m.month
               WHERE p.creator_id = $1 AND p.days & m.mask <> 0
               UNION
               SELECT p.user_id FROM usage_creator_developers_daily p
               JOIN unnest($4::date[], $5::int[]) AS e (day, mask) ON p.day = e.day
               WHERE p.creator_id = $1 AND p.hours & e.mask <> 0
           ) members""",  # UNION (not ALL): hashed distinct
        creator_id,
        *masks,
    )
    return count
