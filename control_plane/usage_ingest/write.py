"""Write: a batch of usage events into `call_logs` and its aggregates, in ONE SQL statement.

One statement, hence one transaction: the events go in as arrays through `unnest`,
`INSERT INTO call_logs ... ON CONFLICT (request_id, created_at) DO NOTHING RETURNING ...`
yields only the rows that are new, and data-modifying CTEs apply exactly those to the
aggregates: `agents.total_calls` (+ billable calls, trials included) and `total_revenue`
(+ cost), `creator_profiles.pending_earnings` (+ cost, gross: the settlement job takes the
platform fee; the profile row is created if missing), `api_keys.last_used_at` (the newest
call per key), `quotas.used_quota` (+ units: Postgres catches up with Redis' live balance)
and `trial_usage.calls_used` (+ billable trial calls: a count of what happened, never capped;
admission alone enforces FREE_TRIAL_CALLS, and a cap here would make a Redis rebuild hand out
calls again after the setting was raised). `call_logs.request_id`
is the event's `call_id` (unique per call); the client's X-Request-ID goes to the nullable
`client_request_id`. `cost_usd` is the served version's `price_per_call` for a billable
call charged to quota, 0 for trial and non-billable calls. A redelivered event conflicts,
inserts nothing and moves no aggregate.

A month without a `call_logs` partition gets one and the statement runs again; a deadlock
or serialization failure is retried at once (with a little jitter).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import asyncpg

from common.retry import retry
from common.usage_events import UsageEvent
from control_plane.usage_ingest.parse import INT32_MAX, MAX_TEXT

logger = logging.getLogger("agentlink.worker.usage")

_TRANSACTION_ATTEMPTS = 4

# `fresh` is exactly the rows this statement inserted.
INGEST_SQL = """
WITH batch AS (
    SELECT *
    FROM unnest($1::text[], $2::text[], $3::uuid[], $4::int[], $5::uuid[], $6::uuid[],
                $7::bigint[], $8::bool[], $9::bool[], $10::int[], $11::int[], $12::int[],
                $13::text[], $14::text[], $15::timestamptz[], $16::int[])
         AS b (request_id, client_request_id, agent_id, agent_version, api_key_id, user_id,
               units, billable, trial, input_tokens, output_tokens, latency_ms, status,
               error_code, created_at, cached_input_tokens)
),
inserted AS (
    INSERT INTO call_logs AS c (request_id, client_request_id, agent_id, agent_version,
                                api_key_id, user_id, units, billable, input_tokens,
                                output_tokens, latency_ms, status, error_code, cost_usd,
                                created_at, cached_input_tokens)
    SELECT b.request_id, b.client_request_id, b.agent_id, b.agent_version, b.api_key_id,
           b.user_id, b.units, b.billable, b.input_tokens, b.output_tokens, b.latency_ms,
           b.status, b.error_code,
           CASE WHEN b.billable AND NOT b.trial
                THEN coalesce(v.price_per_call, a.price_per_call, 0)
                ELSE 0
           END,
           b.created_at, b.cached_input_tokens
    FROM batch b
    LEFT JOIN agent_versions v ON v.agent_id = b.agent_id AND v.version = b.agent_version
    LEFT JOIN agents a ON a.id = b.agent_id
    ON CONFLICT (request_id, created_at) DO NOTHING
    RETURNING c.request_id, c.created_at, c.agent_id, c.user_id, c.units, c.billable,
              c.cost_usd, c.api_key_id
),
fresh AS (
    SELECT i.agent_id, i.user_id, i.units, i.billable, i.cost_usd, b.trial, i.api_key_id,
           i.created_at
    FROM inserted i JOIN batch b USING (request_id, created_at)
),
keys_used AS (
    UPDATE api_keys k
    SET last_used_at = greatest(k.last_used_at, t.last_used)
    FROM (SELECT api_key_id, max(created_at) AS last_used FROM fresh GROUP BY api_key_id) t
    WHERE k.id = t.api_key_id
    RETURNING 1
),
agents_updated AS (
    UPDATE agents a
    SET total_calls = a.total_calls + t.calls, total_revenue = a.total_revenue + t.revenue
    FROM (SELECT agent_id, count(*) AS calls, sum(cost_usd) AS revenue
          FROM fresh WHERE billable GROUP BY agent_id) t
    WHERE a.id = t.agent_id
    RETURNING a.creator_id, t.revenue
),
earnings AS (
    INSERT INTO creator_profiles AS p (user_id, display_name, pending_earnings)
    SELECT e.creator_id,
           coalesce(nullif(left(split_part(u.email, '@', 1), 100), ''), 'creator'),
           e.revenue
    FROM (SELECT creator_id, sum(revenue) AS revenue
          FROM agents_updated GROUP BY creator_id HAVING sum(revenue) > 0) e
    JOIN users u ON u.id = e.creator_id
    ON CONFLICT (user_id) DO UPDATE
        SET pending_earnings = p.pending_earnings + excluded.pending_earnings
    RETURNING 1
),
quota_used AS (
    UPDATE quotas q
    SET used_quota = q.used_quota + t.units
    FROM (SELECT user_id, sum(units) AS units
          FROM fresh WHERE units > 0 GROUP BY user_id) t
    WHERE q.user_id = t.user_id
    RETURNING 1
),
trials_used AS (
    INSERT INTO trial_usage AS tu (user_id, agent_id, calls_used)
    SELECT t.user_id, t.agent_id, t.calls
    FROM (SELECT user_id, agent_id, count(*) AS calls
          FROM fresh WHERE billable AND trial GROUP BY user_id, agent_id) t
    WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)
      AND EXISTS (SELECT 1 FROM agents a WHERE a.id = t.agent_id)
    ON CONFLICT (user_id, agent_id) DO UPDATE
        SET calls_used = tu.calls_used + excluded.calls_used
    RETURNING 1
)
SELECT count(*) AS written, count(*) FILTER (WHERE billable) AS billable FROM fresh
"""


def _client_request_id(value: str) -> str | None:
    if not value or len(value) > MAX_TEXT or "\x00" in value:
        return None
    return value


def _columns(events: Sequence[UsageEvent]) -> list[list[Any]]:
    return [
        [e.call_id for e in events],
        [_client_request_id(e.request_id) for e in events],
        [e.agent_id for e in events],
        [e.agent_version for e in events],
        [e.key_id for e in events],
        [e.user_id for e in events],
        [e.units for e in events],
        [e.billable for e in events],
        [e.charge == "trial" for e in events],
        [e.input_tokens for e in events],
        [e.output_tokens for e in events],
        [min(max(e.latency_ms, 0), INT32_MAX) for e in events],
        [e.status for e in events],
        [e.error_code or None for e in events],
        [e.created_at for e in events],
        [e.cached_input_tokens for e in events],
    ]


def is_missing_partition(error: BaseException) -> bool:
    return isinstance(error, asyncpg.CheckViolationError) and "no partition" in str(error)


def _is_transient(error: BaseException) -> bool:
    return is_missing_partition(error) or isinstance(
        error, asyncpg.DeadlockDetectedError | asyncpg.SerializationError
    )


def is_data_error(error: BaseException) -> bool:
    """Postgres refused the rows themselves (not the connection, not a lock)."""
    if is_missing_partition(error):
        return False
    if isinstance(error, asyncpg.ForeignKeyViolationError):
        # trial_usage: its user or agent was deleted between the EXISTS check and the insert.
        # The retry skips the pair; the event itself is fine and must not be dead-lettered.
        return False
    # ValueError: asyncpg could not encode an argument (its client-side DataError).
    return isinstance(
        error, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError | ValueError
    )


def _months(events: Iterable[UsageEvent]) -> list[date]:
    return sorted({event.created_at.date().replace(day=1) for event in events})


async def _ensure_partitions(db: asyncpg.Pool, events: Iterable[UsageEvent]) -> None:
    for month in _months(events):
        created = await db.fetchval("SELECT ensure_call_log_partitions($1, 1)", month)
        if created:
            logger.warning(
                "created call_logs partition for %s (usage event for a month without one)",
                month.strftime("%Y-%m"),
                extra={"event": "call_log_partition_created"},
            )


async def write_events(db: asyncpg.Pool, events: Sequence[UsageEvent]) -> tuple[int, int]:
    """One transaction: new call_logs rows and their aggregates. Returns (new, billable)."""
    columns = _columns(events)

    async def repair(error: BaseException, attempt: int) -> None:
        if is_missing_partition(error):
            await _ensure_partitions(db, events)
            return
        logger.warning(
            "usage batch hit %s; retrying it",
            type(error).__name__,
            extra={"event": "usage_batch_retry", "count": len(events)},
        )

    row = await retry(
        lambda: db.fetchrow(INGEST_SQL, *columns),
        retry_on=_is_transient,
        attempts=_TRANSACTION_ATTEMPTS,
        backoff=lambda attempt: random.uniform(0.01, 0.05) * attempt,
        on_failure=repair,
    )
    assert row is not None  # an aggregate query always returns its row
    return int(row["written"]), int(row["billable"])
