"""Settlements: a creator's accrued revenue for a period becomes available balance.

How revenue gets here. The `call_logs_rollup` trigger (migration 0007) adds every new billable
call's cost to `earnings_accruals`, one row per (creator, hour of ingestion), in the same
transaction as the call_logs insert; `creator_profiles.pending_earnings` moves with it.

The late-arrival rule. Usage is settled by the time the worker INGESTED it, not by the time of
the call. A settlement for the period [start, end) takes every unsettled accrual of its creator
from before `end`, under row locks, and stamps them with its id. An ingestion that comes later
and finds its hour's accrual stamped adds to the next hour instead. So usage that arrives after
its call's period was settled (the worker was behind) is counted in the next settlement: never
lost, never counted twice. A settlement's calls are therefore "calls ingested in the period",
which is what makes the books close even when call timestamps arrive out of order.

Idempotent per (creator, period): the accruals are locked FOR UPDATE and re-checked, the
settlement row is unique per (creator, period) (0001) and no two periods of one creator may
overlap, so running the job twice, or on two workers at once, gives one settlement. Each
settlement is one transaction: accruals stamped, settlement inserted, pending -> available.

Schedule: the worker runs `settle_due` every SETTLEMENT_INTERVAL_S; a period is due
SETTLEMENT_GRACE_S after it ends (the grace lets the usage stream drain first, so fewer calls
land late). Admins can trigger a run at once (no grace) from the admin API.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from common.db import DbConnection
from common.retry import retry
from control_plane.earnings.money import (
    period_end_after,
    period_end_at_or_before,
    settlement_fee,
)
from control_plane.earnings.settings import EarningsSettings

logger = logging.getLogger("agentlink.worker.settlements")

_RETRIES = 4


@dataclass(frozen=True, slots=True)
class Settled:
    settlement_id: str
    creator_id: str
    period_start: datetime
    period_end: datetime
    gross: Decimal
    fee: Decimal
    net: Decimal
    calls: int


@dataclass(slots=True)
class SettlementRun:
    """What one run did."""

    settlements: list[Settled] = field(default_factory=list)
    through: datetime | None = None

    @property
    def gross(self) -> Decimal:
        return sum((s.gross for s in self.settlements), Decimal(0))

    @property
    def fees(self) -> Decimal:
        return sum((s.fee for s in self.settlements), Decimal(0))

    @property
    def net(self) -> Decimal:
        return sum((s.net for s in self.settlements), Decimal(0))


async def settle_one(
    connection: DbConnection,
    creator_id: str,
    period_start: datetime,
    period_end: datetime,
    fee_percent: Decimal,
) -> Settled | None:
    """Settle the creator's unsettled accruals from before `period_end` as the settlement of
    [period_start, period_end). None when there is nothing to settle, or when that period is
    already settled (what is left then waits for the next period). One transaction."""
    async with connection.transaction():
        # The profile first: ingestion locks it before the accruals, so the same order here
        # means the two queue rather than deadlock.
        profile = await connection.fetchval(
            "SELECT user_id FROM creator_profiles WHERE user_id = $1 FOR UPDATE", creator_id
        )
        if profile is None:
            return None
        rows = await connection.fetch(
            """SELECT accrued_hour, gross, calls FROM earnings_accruals
               WHERE creator_id = $1 AND settlement_id IS NULL AND accrued_hour < $2
               ORDER BY accrued_hour FOR UPDATE""",
            creator_id,
            period_end,
        )
        if not rows:
            return None
        last_end: datetime | None = await connection.fetchval(
            "SELECT max(period_end) FROM settlements WHERE creator_id = $1", creator_id
        )
        start = period_start if last_end is None else max(period_start, last_end)
        if start >= period_end:
            return None  # this period is settled already; the rest goes to the next one
        gross = sum((row["gross"] for row in rows), Decimal(0))
        calls = sum(int(row["calls"]) for row in rows)
        fee = settlement_fee(gross, fee_percent)
        net = gross - fee
        settlement_id = await connection.fetchval(
            """INSERT INTO settlements (creator_id, period_start, period_end, amount,
                                        platform_fee, net_amount, status, settled_at, calls,
                                        fee_percent)
               VALUES ($1, $2, $3, $4, $5, $6, 'settled', now(), $7, $8)
               ON CONFLICT (creator_id, period_start, period_end) DO NOTHING
               RETURNING id""",
            creator_id,
            start,
            period_end,
            gross,
            fee,
            net,
            calls,
            fee_percent,
        )
        if settlement_id is None:
            return None
        await connection.execute(
            """UPDATE earnings_accruals SET settlement_id = $3
               WHERE creator_id = $1 AND accrued_hour = ANY($2::timestamptz[])""",
            creator_id,
            [row["accrued_hour"] for row in rows],
            settlement_id,
        )
        await connection.execute(
            """UPDATE creator_profiles
               SET pending_earnings = pending_earnings - $2,
                   available_balance = available_balance + $3,
                   total_earnings = total_earnings + $3
               WHERE user_id = $1""",
            creator_id,
            gross,
            net,
        )
    return Settled(str(settlement_id), creator_id, start, period_end, gross, fee, net, calls)


async def _settle_with_retries(
    db: asyncpg.Pool, creator_id: str, start: datetime, end: datetime, fee_percent: Decimal
) -> Settled | None:
    async def attempt() -> Settled | None:
        async with db.acquire() as connection:
            return await settle_one(connection, creator_id, start, end, fee_percent)

    return await retry(
        attempt, retry_on=_conflicted, attempts=_RETRIES,
        backoff=lambda retry_number: random.uniform(0.01, 0.05) * retry_number,
    )  # fmt: skip


def _conflicted(error: BaseException) -> bool:
    """A deadlock or serialization failure against a concurrent transaction: try again."""
    return isinstance(error, asyncpg.DeadlockDetectedError | asyncpg.SerializationError)


async def settle_due(
    db: asyncpg.Pool,
    settings: EarningsSettings,
    *,
    now: datetime | None = None,
    grace: timedelta | None = None,
    creator_id: str | None = None,
) -> SettlementRun:
    """Settle every period that ended at least `grace` (default SETTLEMENT_GRACE_S) before
    `now`, oldest first, for every creator with unsettled accruals (or just `creator_id`)."""
    now = now or datetime.now(UTC)
    grace = timedelta(seconds=settings.settlement_grace_s) if grace is None else grace
    hours = settings.settlement_period_hours
    through = period_end_at_or_before(now - grace, hours)
    run = SettlementRun(through=through)
    candidates = await db.fetch(
        """SELECT creator_id, min(accrued_hour) AS oldest FROM earnings_accruals
           WHERE settlement_id IS NULL AND accrued_hour < $1
             AND ($2::uuid IS NULL OR creator_id = $2::uuid)
           GROUP BY creator_id ORDER BY creator_id""",
        through,
        creator_id,
    )
    period = timedelta(hours=hours)
    for candidate in candidates:
        creator = str(candidate["creator_id"])
        end = period_end_after(candidate["oldest"], hours)
        while end <= through:
            settled = await _settle_with_retries(
                db, creator, end - period, end, settings.platform_fee_percent
            )
            if settled is not None:
                run.settlements.append(settled)
            # Whatever is still unsettled (a late accrual, another worker's leftovers) goes to
            # the next period that can take it.
            oldest = await db.fetchval(
                """SELECT min(accrued_hour) FROM earnings_accruals
                   WHERE creator_id = $1 AND settlement_id IS NULL""",
                creator,
            )
            if oldest is None:
                break
            end = max(end + period, period_end_after(oldest, hours))
    if run.settlements:
        logger.info(
            "settled %d creator periods through %s: gross %s, fees %s, net %s",
            len(run.settlements),
            through.isoformat(),
            run.gross,
            run.fees,
            run.net,
            extra={"event": "settlements", "count": len(run.settlements)},
        )
    return run
