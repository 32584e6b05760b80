"""All SQL of the developers domain: profile and quota, API keys, usage from call_logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from common.db import DbConnection, fetch_all, fetch_one, fetch_optional
from common.records import KEY_CONTROL_COLUMNS

# Keys the dashboard's playground mints for itself (control_plane/developers/session_keys.py)
# carry this scope in `permissions`; they do not count against the active-key cap.
SESSION_SCOPE = "playground"


async def profile(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        """SELECT u.id, u.email, u.user_type, u.status, u.rate_tier, u.email_verified,
                  u.created_at, u.redis_shard,
                  coalesce(q.total_quota, 0) AS total_quota,
                  coalesce(q.used_quota, 0) AS used_quota,
                  coalesce(q.free_quota, 0) AS free_quota,
                  (SELECT count(*) FROM api_keys k
                   WHERE k.user_id = u.id AND k.revoked_at IS NULL
                     AND k.permissions->>'scope' IS DISTINCT FROM $2) AS active_keys
           FROM users u LEFT JOIN quotas q ON q.user_id = u.id
           WHERE u.id = $1""",
        user_id,
        SESSION_SCOPE,
    )


async def lock_user(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    """Lock the user's row for the transaction: key creations of one user run one at a time,
    so the active-key cap holds under concurrent requests. Returns the user's shard."""
    return await fetch_optional(
        connection, "SELECT id, redis_shard FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id
    )


async def count_active_keys(
    connection: DbConnection, user_id: str, *, besides: str | None = None
) -> int:
    """The user's keys that still work (not revoked, not expired; the playground's aside),
    not counting `besides`."""
    count: int = await connection.fetchval(
        """SELECT count(*) FROM api_keys
           WHERE user_id = $1 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > now())
             AND permissions->>'scope' IS DISTINCT FROM $2
             AND id IS DISTINCT FROM $3::uuid""",
        user_id,
        SESSION_SCOPE,
        besides,
    )
    return count


async def insert_key(
    connection: DbConnection,
    *,
    user_id: str,
    key_hash: str,
    prefix: str,
    name: str,
    permissions: dict[str, Any] | None = None,
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        """INSERT INTO api_keys (user_id, key_hash, key_prefix, name, permissions)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, name, key_prefix, created_at, permissions""",
        user_id,
        key_hash,
        prefix,
        name,
        permissions or {},
    )


async def active_session_keys(connection: DbConnection, user_id: str) -> list[asyncpg.Record]:
    """The user's unrevoked playground keys, locked (api_keys_user_idx finds them)."""
    return await fetch_all(
        connection,
        """SELECT id, key_hash FROM api_keys
           WHERE user_id = $1 AND revoked_at IS NULL AND permissions->>'scope' = $2
           FOR NO KEY UPDATE""",
        user_id,
        SESSION_SCOPE,
    )


async def unrevoked_session_keys(
    connection: DbConnection, key_ids: list[str]
) -> list[asyncpg.Record]:
    """Of these key ids, the playground keys not revoked yet, locked, with their shard."""
    return await fetch_all(
        connection,
        """SELECT k.id, k.user_id, k.key_hash, u.redis_shard
           FROM api_keys k JOIN users u ON u.id = k.user_id
           WHERE k.id = ANY($1::uuid[]) AND k.revoked_at IS NULL
             AND k.permissions->>'scope' = $2
           FOR NO KEY UPDATE OF k""",
        key_ids,
        SESSION_SCOPE,
    )


async def revoke_keys(connection: DbConnection, key_ids: list[str]) -> None:
    await connection.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = ANY($1::uuid[])",
        key_ids,
    )


async def list_keys(
    connection: DbConnection,
    user_id: str,
    *,
    include_revoked: bool,
    limit: int,
    after: tuple[datetime, str] | None,
    scope: str | None = None,
) -> list[asyncpg.Record]:
    """Newest first (index api_keys_user_idx), up to `limit + 1` rows. `scope`: "api" for
    the developer's own keys only, "playground" for the playground's, None for both."""
    params: list[Any] = [user_id, include_revoked, limit + 1, scope, SESSION_SCOPE]
    after_clause = ""
    if after is not None:
        params += [after[0], after[1]]
        after_clause = "AND (created_at < $6 OR (created_at = $6 AND id > $7::uuid))"
    return await fetch_all(
        connection,
        f"""SELECT id, name, key_prefix, created_at, last_used_at, revoked_at, permissions,
                   {KEY_CONTROL_COLUMNS}
            FROM api_keys
            WHERE user_id = $1 AND ($2 OR revoked_at IS NULL)
              AND ($4::text IS NULL
                   OR ($4 = $5) = (permissions->>'scope' IS NOT DISTINCT FROM $5))
              {after_clause}
            ORDER BY created_at DESC, id LIMIT $3""",  # noqa: S608 - a constant clause
        *params,
    )


async def key_for_update(
    connection: DbConnection, user_id: str, key_id: str
) -> asyncpg.Record | None:
    """The caller's own key, locked; None for a key that is not theirs (or does not exist)."""
    return await fetch_optional(
        connection,
        f"""SELECT k.id, k.key_hash, k.revoked_at, k.name, k.key_prefix, u.redis_shard,
                   k.permissions, k.created_at, k.last_used_at, {KEY_CONTROL_COLUMNS}
            FROM api_keys k JOIN users u ON u.id = k.user_id
            WHERE k.id = $1 AND k.user_id = $2
            FOR NO KEY UPDATE OF k""",  # noqa: S608 - a constant column list
        key_id,
        user_id,
    )


async def revoke_key(connection: DbConnection, key_id: str) -> None:
    await connection.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", key_id
    )


async def usage(
    connection: DbConnection,
    user_id: str,
    start: datetime,
    end: datetime,
    whole_hours: tuple[datetime, datetime],
) -> list[asyncpg.Record]:
    """Aggregates of the user's calls in [start, end): one row per agent (level 3), per UTC
    day (level 5), per API key (level 6) and the grand total (level 7). The level is
    GROUPING(agent_id, day, api_key_id).

    The whole hours inside the range come from the `usage_key_hourly` rollup (migration 0007);
    the partial hours at its two edges from call_logs (an index range scan on a pruned
    partition), so any range is exact and costs a few rollup rows per hour, however many
    calls there were."""
    return await fetch_all(
        connection,
        """WITH logs AS (
               SELECT agent_id, api_key_id, (hour AT TIME ZONE 'UTC')::date AS day, calls,
                      billable_calls, successful_calls, error_calls, units, spend,
                      input_tokens, output_tokens
               FROM usage_key_hourly
               WHERE user_id = $1 AND hour >= $4 AND hour < $5
               UNION ALL
               SELECT agent_id, api_key_id, (created_at AT TIME ZONE 'UTC')::date, 1,
                      billable::int, (status = 'success')::int,
                      (status IN ('error', 'timeout', 'blocked'))::int, units, cost_usd,
                      coalesce(input_tokens, 0), coalesce(output_tokens, 0)
               FROM call_logs
               WHERE user_id = $1 AND (created_at >= $2 AND created_at < $4
                                       OR created_at >= $5 AND created_at < $3)
           )
           SELECT agent_id, day, api_key_id, GROUPING(agent_id, day, api_key_id) AS level,
                  coalesce(sum(calls), 0)::bigint AS calls,
                  coalesce(sum(billable_calls), 0)::bigint AS billable_calls,
                  coalesce(sum(successful_calls), 0)::bigint AS successful_calls,
                  coalesce(sum(error_calls), 0)::bigint AS failed_calls,
                  coalesce(sum(units), 0)::bigint AS units,
                  coalesce(sum(spend), 0) AS cost_usd,
                  coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
                  coalesce(sum(output_tokens), 0)::bigint AS output_tokens
           FROM logs
           GROUP BY GROUPING SETS ((agent_id), (day), (api_key_id), ())""",
        user_id,
        start,
        end,
        *whole_hours,
    )


async def key_labels(
    connection: DbConnection, user_id: str, key_ids: list[str]
) -> dict[str, asyncpg.Record]:
    """Name, prefix and scope of these keys of the user's, by id."""
    rows = await connection.fetch(
        """SELECT id, name, key_prefix, permissions->>'scope' AS scope FROM api_keys
           WHERE id = ANY($2::uuid[]) AND user_id = $1""",
        user_id,
        key_ids,
    )
    return {str(row["id"]): row for row in rows}


async def trials(connection: DbConnection, user_id: str) -> dict[str, int]:
    """Trial calls used per agent, as the worker has recorded them so far."""
    rows = await connection.fetch(
        "SELECT agent_id, calls_used FROM trial_usage WHERE user_id = $1", user_id
    )
    return {str(row["agent_id"]): row["calls_used"] for row in rows}


async def agent_names(connection: DbConnection, agent_ids: list[str]) -> dict[str, str]:
    rows = await connection.fetch(
        "SELECT id, name FROM agents WHERE id = ANY($1::uuid[])", agent_ids
    )
    return {str(row["id"]): row["name"] for row in rows}


async def set_key_controls(
    connection: DbConnection,
    key_id: str,
    *,
    name: str,
    spend_cap_units: int | None,
    spend_cap_period: str | None,
    rate_limit: int | None,
    expires_at: datetime | None,
    allowed_agents: list[str] | None,
) -> asyncpg.Record:
    return await fetch_one(
        connection,
        f"""UPDATE api_keys SET name = $2, spend_cap_units = $3, spend_cap_period = $4,
                   rate_limit = $5, expires_at = $6, allowed_agents = $7::uuid[]
            WHERE id = $1
            RETURNING id, name, key_prefix, created_at, last_used_at, revoked_at, permissions,
                      {KEY_CONTROL_COLUMNS}""",  # noqa: S608 - a constant column list
        key_id, name, spend_cap_units, spend_cap_period, rate_limit, expires_at, allowed_agents,
    )  # fmt: skip
