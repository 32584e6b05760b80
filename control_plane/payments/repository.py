"""All SQL of the payments domain."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from common.db import DbConnection, fetch_all, fetch_optional
from control_plane.admin.repository import offset_page

PAYMENT_COLUMNS = """p.id, p.user_id, p.package, p.amount_usd, p.currency, p.quota_purchased,
    p.payment_method, p.payment_id, p.provider_ref, p.status, p.checkout_url, p.refunded_usd,
    p.refunded_units, p.lost_units, p.failure_reason, p.created_at, p.updated_at,
    p.completed_at"""


# --- payments ---------------------------------------------------------------------------------


async def insert_payment(
    connection: DbConnection, *, user_id: str, package: str, amount: Decimal, units: int,
    method: str,
) -> str:  # fmt: skip
    payment_id = await connection.fetchval(
        """INSERT INTO payments (user_id, package, amount_usd, quota_purchased, payment_method)
           VALUES ($1, $2, $3, $4, $5) RETURNING id""",
        user_id, package, amount, units, method,
    )  # fmt: skip
    return str(payment_id)


async def set_checkout(
    connection: DbConnection, payment_id: str, provider_payment_id: str,
    provider_ref: str | None, url: str,
) -> None:  # fmt: skip
    await connection.execute(
        """UPDATE payments SET payment_id = $2, provider_ref = COALESCE(provider_ref, $3),
                               checkout_url = $4
           WHERE id = $1""",
        payment_id, provider_payment_id, provider_ref, url,
    )  # fmt: skip


async def fail_checkout(connection: DbConnection, payment_id: str, reason: str) -> None:
    await connection.execute(
        """UPDATE payments SET status = 'failed', failure_reason = $2
           WHERE id = $1 AND status = 'pending'""",
        payment_id, reason,
    )  # fmt: skip


async def payment(
    connection: DbConnection, payment_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await fetch_optional(
        connection,
        f"SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.id = $1{lock}",  # noqa: S608
        payment_id,
    )


async def payment_by_provider(
    connection: DbConnection, method: str, *, provider_payment_id: str | None,
    provider_ref: str | None,
) -> asyncpg.Record | None:  # fmt: skip
    """The payment a provider's own id or secondary reference names, locked."""
    return await fetch_optional(connection,
        f"""SELECT {PAYMENT_COLUMNS} FROM payments p
            WHERE p.payment_method = $1
              AND (p.payment_id = $2 OR p.provider_ref = $3)
            ORDER BY p.created_at LIMIT 1 FOR UPDATE""",  # noqa: S608
        method, provider_payment_id, provider_ref,
    )  # fmt: skip


async def complete_payment(
    connection: DbConnection, payment_id: str, provider_payment_id: str | None,
    provider_ref: str | None,
) -> None:  # fmt: skip
    await connection.execute(
        """UPDATE payments
           SET status = 'completed', completed_at = now(), failure_reason = NULL,
               payment_id = COALESCE(payment_id, $2), provider_ref = COALESCE(provider_ref, $3)
           WHERE id = $1""",
        payment_id, provider_payment_id, provider_ref,
    )  # fmt: skip


async def end_payment(
    connection: DbConnection, payment_id: str, status: str, reason: str | None
) -> None:
    """A pending payment that will never be paid: failed or expired."""
    await connection.execute(
        "UPDATE payments SET status = $2, failure_reason = $3 WHERE id = $1",
        payment_id, status, reason[:500] if reason else None,
    )  # fmt: skip


async def record_take_back(
    connection: DbConnection, payment_id: str, *, status: str, refunded_usd: Decimal,
    units: int, lost: int,
) -> None:  # fmt: skip
    await connection.execute(
        """UPDATE payments
           SET status = $2, refunded_usd = GREATEST(refunded_usd, $3),
               refunded_units = refunded_units + $4, lost_units = lost_units + $5
           WHERE id = $1""",
        payment_id, status, refunded_usd, units, lost,
    )  # fmt: skip


async def add_lost_units(connection: DbConnection, payment_id: str, units: int) -> None:
    await connection.execute(
        "UPDATE payments SET lost_units = lost_units + $2 WHERE id = $1", payment_id, units
    )


async def user_payments(
    connection: DbConnection, user_id: str, *, before: tuple[Any, str] | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first, keyset paginated on (created_at, id)."""
    if before is None:
        return await fetch_all(connection,
            f"""SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.user_id = $1
                ORDER BY p.created_at DESC, p.id DESC LIMIT $2""",  # noqa: S608
            user_id, limit,
        )  # fmt: skip
    rows = await connection.fetch(
        f"""SELECT {PAYMENT_COLUMNS} FROM payments p
            WHERE p.user_id = $1 AND (p.created_at, p.id) < ($2, $3::uuid)
            ORDER BY p.created_at DESC, p.id DESC LIMIT $4""",  # noqa: S608
        user_id, before[0], before[1], limit,
    )  # fmt: skip
    return rows


async def list_payments(
    connection: DbConnection, *, where: str, args: list[Any], limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    return await offset_page(
        connection, source="payments p JOIN users u ON u.id = p.user_id",
        columns=f"{PAYMENT_COLUMNS}, u.email", order="p.created_at DESC, p.id DESC",
        filters=(where, args), limit=limit, offset=offset,
    )  # fmt: skip


async def payment_events(connection: DbConnection, payment_id: str) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        """SELECT event_id, event_type, outcome, attempts, received_at, processed_at
           FROM payment_events WHERE payment_id = $1 ORDER BY received_at, id""",
        payment_id,
    )


async def set_rate_tier_from_payments(connection: DbConnection, user_id: str) -> None:
    """Paid while the user has a payment that still stands (completed, even partly refunded)."""
    await connection.execute(
        """UPDATE users SET rate_tier = CASE WHEN EXISTS (
               SELECT 1 FROM payments WHERE user_id = $1 AND status = 'completed')
             THEN 'paid' ELSE 'free' END
           WHERE id = $1""",
        user_id,
    )


# --- payment_events ---------------------------------------------------------------------------


async def claim_event(
    connection: DbConnection, provider: str, event_id: str, event_type: str,
    payload: dict[str, Any],
) -> int | None:  # fmt: skip
    """Store a verified event; its row id if this delivery is to be processed, None for a
    duplicate of one already processed. A `deferred` event is processed again (locked, so
    concurrent redeliveries take turns)."""
    inserted = await connection.fetchval(
        """INSERT INTO payment_events (provider, event_id, event_type, payload)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (provider, event_id) DO NOTHING RETURNING id""",
        provider, event_id, event_type, payload,
    )  # fmt: skip
    if inserted is not None:
        return int(inserted)
    row = await connection.fetchrow(
        """SELECT id, outcome FROM payment_events WHERE provider = $1 AND event_id = $2
           FOR UPDATE""",
        provider, event_id,
    )  # fmt: skip
    if row is None or row["outcome"] != "deferred":
        return None
    await connection.execute(
        "UPDATE payment_events SET attempts = attempts + 1 WHERE id = $1", row["id"]
    )
    return int(row["id"])


async def finish_event(
    connection: DbConnection, event_row: int, payment_id: str | None, outcome: str
) -> None:
    await connection.execute(
        """UPDATE payment_events SET payment_id = $2, outcome = $3,
                  processed_at = CASE WHEN $3 = 'deferred' THEN NULL ELSE now() END
           WHERE id = $1""",
        event_row, payment_id, outcome,
    )  # fmt: skip


async def deferred_events(connection: DbConnection, limit: int) -> list[asyncpg.Record]:
    """Events waiting for their payment (e.g. a refund that came before the completion),
    within the 3 days providers themselves retry for."""
    return await fetch_all(
        connection,
        """SELECT provider, payload FROM payment_events
           WHERE outcome = 'deferred' AND received_at > now() - interval '3 days'
           ORDER BY received_at LIMIT $1""",
        limit,
    )


# --- quota adjustments ------------------------------------------------------------------------


async def adjust_quota(
    connection: DbConnection, *, user_id: str, payment_id: str | None, kind: str, units: int,
    take_back: bool, actor_id: str | None = None, reason: str | None = None,
) -> int:  # fmt: skip
    """Write one adjustment and apply it to `quotas` (locked); returns `planned`.

    A credit adds `units`. A take-back removes what is left, at most `units`: the balance
    never goes below zero, and the caller records the rest as lost.
    """
    await connection.execute(
        "INSERT INTO quotas (user_id, free_quota) VALUES ($1, 0) ON CONFLICT DO NOTHING", user_id
    )
    left = await connection.fetchval(
        """SELECT GREATEST(total_quota + free_quota - used_quota, 0) FROM quotas
           WHERE user_id = $1 FOR UPDATE""",
        user_id,
    )
    planned = -min(units, int(left)) if take_back else units
    seq = await connection.fetchval(
        """UPDATE quotas SET total_quota = total_quota + $2, adjust_seq = adjust_seq + 1
           WHERE user_id = $1 RETURNING adjust_seq""",
        user_id, planned,
    )  # fmt: skip
    await connection.execute(
        """INSERT INTO quota_adjustments (user_id, payment_id, kind, units, planned, seq,
                                          actor_id, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        user_id, payment_id, kind, units, planned, seq, actor_id, reason,
    )  # fmt: skip
    return planned


async def unsynced_adjustments(connection: DbConnection, user_id: str) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        """SELECT id, seq, planned FROM quota_adjustments
           WHERE user_id = $1 AND synced_at IS NULL ORDER BY seq""",
        user_id,
    )


async def users_with_unsynced_adjustments(
    connection: DbConnection, *, older_than_s: float, limit: int
) -> list[str]:
    rows = await connection.fetch(
        """SELECT user_id FROM quota_adjustments
           WHERE synced_at IS NULL AND created_at < now() - make_interval(secs => $1)
           GROUP BY user_id ORDER BY min(created_at) LIMIT $2""",
        older_than_s, limit,
    )  # fmt: skip
    return [str(row["user_id"]) for row in rows]


async def quota_snapshot(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    """The balance and adjust_seq of one snapshot: what the gateway's cold load reads."""
    return await fetch_optional(
        connection,
        """SELECT GREATEST(total_quota + free_quota - used_quota, 0) AS balance, adjust_seq
           FROM quotas WHERE user_id = $1""",
        user_id,
    )


async def mark_synced(
    connection: DbConnection, adjustment_id: str, applied: int
) -> asyncpg.Record | None:
    """Record what Redis applied; the row (planned, user, payment) the first time only."""
    return await fetch_optional(connection,
        """UPDATE quota_adjustments SET applied = $2, synced_at = now()
           WHERE id = $1 AND synced_at IS NULL
           RETURNING planned, user_id, payment_id""",
        adjustment_id, applied,
    )  # fmt: skip


async def give_back_shortfall(connection: DbConnection, user_id: str, units: int) -> None:
    await connection.execute(
        "UPDATE quotas SET total_quota = total_quota + $2 WHERE user_id = $1", user_id, units
    )


async def user_for_sync(connection: DbConnection, user_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        "SELECT redis_shard, status, rate_tier FROM users WHERE id = $1 FOR UPDATE",
        user_id,
    )
