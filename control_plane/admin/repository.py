"""All SQL of the admin domain. No query here ever selects a config, password or key hash."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from common.db import DbConnection, fetch_all, fetch_one, fetch_optional


def like_pattern(text: str) -> str:
    """`text` as a literal substring for ILIKE (its own % _ and \\ escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ------------------------------------------------------------------------------------------
# Dashboard
# ------------------------------------------------------------------------------------------


async def user_counts(connection: DbConnection) -> list[asyncpg.Record]:
    return await fetch_all(
        connection, "SELECT user_type, status, count(*) AS n FROM users GROUP BY user_type, status"
    )


async def agent_counts(connection: DbConnection) -> list[asyncpg.Record]:
    return await fetch_all(connection, "SELECT status, count(*) AS n FROM agents GROUP BY status")


async def agent_totals(connection: DbConnection) -> asyncpg.Record:
    return await fetch_one(
        connection,
        """SELECT COALESCE(sum(total_calls), 0)::bigint AS calls,
                  COALESCE(sum(total_revenue), 0) AS revenue
           FROM agents""",
    )


async def call_windows(connection: DbConnection) -> asyncpg.Record:
    """Calls and billable revenue over the last 24 hours and 30 days, in one pass over the
    (at most two) monthly partitions the 30-day range touches."""
    return await fetch_one(
        connection,
        """SELECT
             count(*) FILTER (WHERE created_at >= now() - interval '24 hours') AS calls_24h,
             count(*) FILTER (WHERE billable AND created_at >= now() - interval '24 hours')
               AS billable_24h,
             COALESCE(sum(cost_usd) FILTER (
               WHERE billable AND created_at >= now() - interval '24 hours'), 0) AS revenue_24h,
             count(*) AS calls_30d,
             count(*) FILTER (WHERE billable) AS billable_30d,
             COALESCE(sum(cost_usd) FILTER (WHERE billable), 0) AS revenue_30d
           FROM call_logs
           WHERE created_at >= now() - interval '30 days'""",
    )


async def pending_review_count(connection: DbConnection) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM reviews WHERE status = 'pending'"))


# ------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------

_USER_COLUMNS = """u.id, u.email, u.user_type, u.admin_role, u.status, u.rate_tier,
                   u.email_verified, u.created_at, u.updated_at"""


def where_clause(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is given (not None or empty), each value
    a bound parameter: `("u.status = ${}", status)` becomes `u.status = $1`."""
    clauses: list[str] = []
    args: list[Any] = []
    for template, value in conditions:
        if value is None or value == "":
            continue
        args.append(value)
        clauses.append(template.format(len(args)))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def offset_page(
    connection: DbConnection,
    *,
    source: str,
    columns: str,
    order: str,
    filters: tuple[str, list[Any]],
    limit: int,
    offset: int,
    count_source: str | None = None,
) -> tuple[list[asyncpg.Record], int]:
    """One page of `SELECT columns FROM source WHERE ... ORDER BY order`, and how many rows
    match in all (counted FROM `count_source`, by default `source`). Every part but the
    values is a constant of ours; the values (`filters`, from `where_clause`) are bound."""
    where, args = filters
    total = await connection.fetchval(
        f"SELECT count(*) FROM {count_source or source}{where}",  # noqa: S608
        *args,
    )
    rows: list[asyncpg.Record] = await connection.fetch(
        f"""SELECT {columns} FROM {source}{where} ORDER BY {order}
            LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",  # noqa: S608 - built from constants
        *args,
        limit,
        offset,
    )
    return rows, int(total)


def _user_filter(q: str | None, user_type: str | None, status: str | None) -> tuple[str, list[Any]]:
    return where_clause(
        ("lower(u.email) LIKE ${}", like_pattern(q.strip().lower()) if q else None),
        ("u.user_type = ${}", user_type),
        ("u.status = ${}", status),
    )


async def list_users(
    connection: DbConnection,
    *,
    q: str | None,
    user_type: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    return await offset_page(
        connection, source="users u", columns=_USER_COLUMNS,
        order="u.created_at DESC, u.id DESC", filters=_user_filter(q, user_type, status),
        limit=limit, offset=offset,
    )  # fmt: skip


async def user(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        f"SELECT {_USER_COLUMNS}, u.redis_shard FROM users u WHERE u.id = $1",  # noqa: S608
        user_id,
    )


async def users_for_update(
    connection: DbConnection, user_ids: Sequence[str]
) -> dict[str, asyncpg.Record]:
    """Lock the rows of these users, always in id order (so two admins acting on each other
    cannot deadlock); returns them by id."""
    rows = await connection.fetch(
        f"""SELECT {_USER_COLUMNS}, u.redis_shard FROM users u
            WHERE u.id = ANY($1::uuid[]) ORDER BY u.id FOR UPDATE""",  # noqa: S608
        list(user_ids),
    )
    return {str(row["id"]): row for row in rows}


async def set_user_status(connection: DbConnection, user_id: str, status: str) -> None:
    await connection.execute("UPDATE users SET status = $2 WHERE id = $1", user_id, status)


async def set_user_rate_tier(connection: DbConnection, user_id: str, tier: str) -> None:
    await connection.execute("UPDATE users SET rate_tier = $2 WHERE id = $1", user_id, tier)


async def close_user(connection: DbConnection, user_id: str, anonymous_email: str) -> None:
    """Mark an account deleted and strip what identifies or authenticates it."""
    await connection.execute(
        """UPDATE users
           SET status = 'deleted', email = $2, password_hash = '!deleted',
               wallet_address = NULL, email_verified = false
           WHERE id = $1""",
        user_id,
        anonymous_email,
    )


async def revoke_api_keys(connection: DbConnection, user_id: str) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        """UPDATE api_keys SET revoked_at = now()
           WHERE user_id = $1 AND revoked_at IS NULL
           RETURNING id, key_hash""",
        user_id,
    )


async def disable_webhooks(connection: DbConnection, user_id: str) -> int:
    status: str = await connection.execute(
        "UPDATE webhooks SET active = false WHERE user_id = $1 AND active", user_id
    )
    return int(status.rsplit(" ", 1)[1])


async def deactivate_creator_agents(
    connection: DbConnection, creator_id: str
) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        """UPDATE agents SET status = 'inactive'
           WHERE creator_id = $1 AND status = 'active'
           RETURNING id, status, version, price_per_call""",
        creator_id,
    )


async def key_counts(connection: DbConnection, user_id: str) -> asyncpg.Record:
    return await fetch_one(
        connection,
        """SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS active,
                  count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked
           FROM api_keys WHERE user_id = $1""",
        user_id,
    )


async def quota(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        "SELECT total_quota, used_quota, free_quota FROM quotas WHERE user_id = $1",
        user_id,
    )


async def creator_profile(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        """SELECT display_name, verified, total_earnings, pending_earnings
           FROM creator_profiles WHERE user_id = $1""",
        user_id,
    )


async def creator_agent_counts(connection: DbConnection, creator_id: str) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        "SELECT status, count(*) AS n FROM agents WHERE creator_id = $1 GROUP BY status",
        creator_id,
    )


# ------------------------------------------------------------------------------------------
# Agents
# ------------------------------------------------------------------------------------------

# Deliberately an explicit list: config_encrypted and config_key_id are never read here.
_AGENT_COLUMNS = """a.id, a.creator_id, u.email AS creator_email, a.name, a.category, a.status,
                    a.price_per_call, a.version, a.total_calls, a.total_revenue,
                    a.average_rating, a.review_count, a.featured, a.created_at, a.updated_at,
                    a.published_at"""


def _agent_filter(
    q: str | None, status: str | None, creator_id: str | None
) -> tuple[str, list[Any]]:
    return where_clause(
        ("a.name ILIKE ${}", like_pattern(q.strip()) if q else None),
        ("a.status = ${}", status),
        ("a.creator_id = ${}", creator_id),
    )


async def list_agents(
    connection: DbConnection,
    *,
    q: str | None,
    status: str | None,
    creator_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    return await offset_page(
        connection, source="agents a JOIN users u ON u.id = a.creator_id",
        count_source="agents a", columns=_AGENT_COLUMNS, order="a.created_at DESC, a.id DESC",
        filters=_agent_filter(q, status, creator_id), limit=limit, offset=offset,
    )  # fmt: skip


async def agent(
    connection: DbConnection, agent_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE OF a" if for_update else ""
    return await fetch_optional(
        connection,
        f"""SELECT {_AGENT_COLUMNS}, a.description
            FROM agents a JOIN users u ON u.id = a.creator_id
            WHERE a.id = $1{lock}""",  # noqa: S608 - built from constants
        agent_id,
    )


async def set_agent_status(connection: DbConnection, agent_id: str, status: str) -> asyncpg.Record:
    """Set the status; an agent made active gets a publication time if it never had one."""
    return await fetch_one(
        connection,
        """UPDATE agents
           SET status = $2,
               published_at = CASE WHEN $2 = 'active' THEN COALESCE(published_at, now())
                                   ELSE published_at END
           WHERE id = $1
           RETURNING status, version, price_per_call, published_at""",
        agent_id,
        status,
    )


# ------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------


async def audit_entries(
    connection: DbConnection,
    *,
    actor_id: str | None,
    action: str | None,
    target_type: str | None,
    target_id: str | None,
    before: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("actor_id", actor_id), ("action", action),
                          ("target_type", target_type), ("target_id", target_id),
                          ):  # fmt: skip
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if before is not None:
        args.append(before)
        clauses.append(f"id < ${len(args)}")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return await fetch_all(
        connection,
        f"""SELECT id, actor_id, actor_role, action, target_type, target_id, details,
                   host(ip) AS ip, created_at
            FROM audit_log{where}
            ORDER BY id DESC LIMIT ${len(args) + 1}""",  # noqa: S608 - built from constants
        *args,
        limit,
    )


# ------------------------------------------------------------------------------------------
# System
# ------------------------------------------------------------------------------------------


async def applied_migrations(connection: DbConnection) -> list[asyncpg.Record]:
    return await fetch_all(
        connection, "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
    )
