"""What a verified provider event does to a payment and the developer's quota, exactly once.

One Postgres transaction per delivery:
1. the event is stored (`payment_events`, unique per provider event id); a redelivery of an
   event already processed stops here (property 13: duplicates credit nothing more);
2. the payment it names is locked, so concurrent deliveries of different events about one
   payment take turns (property 13: any interleaving);
3. the state machine below moves the payment and writes the quota adjustment (credit or
   take-back) together with the move;
4. the event row records the outcome.
The Redis side follows after commit (`quota_sync.py`), applied once per adjustment.

State machine (anything else leaves the payment as it is: `no_change`):
- CONFIRMED on pending/failed/expired → completed: +units, tier paid (`credited`). The amount
  and currency must be what the payment asked for, or it is failed instead (`failed`).
- FAILED / EXPIRED on pending → failed / expired (`failed` / `expired`): nothing credited
  (property 14).
- REFUNDED on completed/refunded → the units of the cumulative refunded share (rounded up)
  are taken back from what is left; refunded once the whole amount is (`refunded`).
- DISPUTED on completed/refunded → every unit not yet taken back is taken back (`disputed`).
- REFUNDED / DISPUTED before the payment completed → `deferred`: answered with 409 so the
  provider retries, and retried by the worker's reconciler.
- An event naming no payment of ours, or a payment of the other provider → `ignored`.
Taking back never drives a balance below zero: what was already used is recorded on the
payment as `lost_units`. The tier falls back to free when no completed payment is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

import asyncpg

from common.db import DbConnection
from common.redis_store import LuaScripts, RedisClient
from control_plane.payments import notify, repository
from control_plane.payments.providers.base import Action, ProviderEvent
from control_plane.payments.quota_sync import sync_user_or_defer

DUPLICATE = "duplicate"  # not an outcome stored: the answer to a redelivery
_OPEN = frozenset({"pending", "failed", "expired"})
_PAID = frozenset({"completed", "refunded"})


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: str
    payment_id: str | None
    user_id: str | None  # whose quota (or tier) changed: sync it to Redis after commit


async def process(
    db: asyncpg.Pool, redis: RedisClient, scripts: LuaScripts, event: ProviderEvent
) -> Applied:
    """Apply one verified event in its own transaction, then sync the quota it changed to
    Redis (left to the reconciler if Redis is down: the credit itself is committed)."""
    async with db.acquire() as connection, connection.transaction():
        applied = await apply_event(connection, event)
    if applied.user_id is not None:
        await sync_user_or_defer(db, redis, scripts, applied.user_id)
    return applied


async def apply_event(connection: DbConnection, event: ProviderEvent) -> Applied:
    """Process one verified event inside the caller's transaction."""
    row_id = await repository.claim_event(
        connection, event.provider, event.event_id, event.event_type, event.payload
    )
    if row_id is None:
        return Applied(DUPLICATE, None, None)
    payment = await _find_payment(connection, event)
    if payment is None or payment["payment_method"] != event.provider:
        outcome = "no_change" if event.action is Action.NONE else "ignored"
        await repository.finish_event(connection, row_id, None, outcome)
        return Applied(outcome, None, None)
    outcome = await _transition(connection, payment, event)
    payment_id = str(payment["id"])
    await repository.finish_event(connection, row_id, payment_id, outcome)
    changed = outcome in ("credited", "refunded", "disputed")
    return Applied(outcome, payment_id, str(payment["user_id"]) if changed else None)


async def _find_payment(connection: DbConnection, event: ProviderEvent) -> asyncpg.Record | None:
    if event.payment_id is not None:
        found = await repository.payment(connection, event.payment_id, for_update=True)
        if found is not None:
            return found
    if event.provider_payment_id is None and event.provider_ref is None:
        return None
    return await repository.payment_by_provider(
        connection, event.provider, provider_payment_id=event.provider_payment_id,
        provider_ref=event.provider_ref,
    )  # fmt: skip


async def _transition(
    connection: DbConnection, payment: asyncpg.Record, event: ProviderEvent
) -> str:
    status = payment["status"]
    if event.action is Action.CONFIRMED and status in _OPEN:
        return await _confirm(connection, payment, event)
    if event.action in (Action.FAILED, Action.EXPIRED) and status == "pending":
        ended = "failed" if event.action is Action.FAILED else "expired"
        await repository.end_payment(connection, str(payment["id"]), ended, event.reason)
        return ended
    if event.action in (Action.REFUNDED, Action.DISPUTED):
        if status in _OPEN:
            return "deferred"
        if status in _PAID:
            return await _take_back(connection, payment, event)
    return "no_change"


async def _confirm(connection: DbConnection, payment: asyncpg.Record, event: ProviderEvent) -> str:
    payment_id, user_id = str(payment["id"]), str(payment["user_id"])
    wrong_amount = event.amount is not None and event.amount != payment["amount_usd"]
    wrong_currency = event.currency is not None and event.currency != payment["currency"]
    if wrong_amount or wrong_currency:
        await repository.end_payment(connection, payment_id, "failed", "amount mismatch")
        return "failed"
    await repository.complete_payment(
        connection, payment_id, event.provider_payment_id, event.provider_ref
    )
    await repository.adjust_quota(
        connection, user_id=user_id, payment_id=payment_id, kind="purchase",
        units=payment["quota_purchased"], take_back=False,
    )  # fmt: skip
    await repository.set_rate_tier_from_payments(connection, user_id)
    await notify.payment_succeeded(connection, payment, units=payment["quota_purchased"])
    return "credited"


def refunded_units(units: int, amount: Decimal, refunded: Decimal) -> int:
    """The units a refund of `refunded` out of `amount` takes back: its share, rounded up
    (a refund never leaves a fraction of a call unpaid-for)."""
    share = Decimal(units) * refunded / amount
    return min(units, int(share.to_integral_value(rounding=ROUND_CEILING)))


async def _take_back(
    connection: DbConnection, payment: asyncpg.Record, event: ProviderEvent
) -> str:
    if event.action is Action.DISPUTED:
        return await take_back(connection, payment, dispute=True)
    return await take_back(connection, payment, refunded=event.refunded or payment["amount_usd"])


async def take_back(
    connection: DbConnection, payment: asyncpg.Record, *, refunded: Decimal | None = None,
    dispute: bool = False,
) -> str:  # fmt: skip
    """Take back the units of a (locked, paid) payment: all of them for a dispute, else the
    share of `refunded`, the cumulative amount refunded so far. Returns the outcome."""
    payment_id, user_id = str(payment["id"]), str(payment["user_id"])
    amount, units = payment["amount_usd"], payment["quota_purchased"]
    if dispute:
        total, target, status, kind = payment["refunded_usd"], units, "disputed", "dispute"
    else:
        total = min(amount, max(payment["refunded_usd"], refunded or amount))
        target = refunded_units(units, amount, total)
        status = "refunded" if total == amount else "completed"
        kind = "refund"
        if total == payment["refunded_usd"] and target <= payment["refunded_units"]:
            return "no_change"
    due = max(0, target - payment["refunded_units"])
    lost = 0
    if due:
        planned = await repository.adjust_quota(
            connection, user_id=user_id, payment_id=payment_id, kind=kind, units=due,
            take_back=True,
        )  # fmt: skip
        lost = due + planned
    await repository.record_take_back(
        connection, payment_id, status=status, refunded_usd=total, units=due, lost=lost
    )
    await repository.set_rate_tier_from_payments(connection, user_id)
    await notify.payment_refunded(connection, payment, units=due, lost=lost, reason=kind)
    return "disputed" if dispute else "refunded"
