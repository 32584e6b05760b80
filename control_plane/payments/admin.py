"""Admin operations on payments (permission `payments:manage`): list with filters, detail with
its events, refund, and a manual quota credit. Mutations follow control_plane/admin's pattern:
one transaction that locks what it changes, changes it, and appends its audit row; the Redis
side follows after commit through quota_sync (so a Redis outage delays it, never loses it).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from common.db import DbConnection
from common.errors import ApiError, ErrorCode
from common.validation import invalid
from control_plane import audit
from control_plane.admin.repository import like_pattern, where_clause
from control_plane.admin.service import parse_id
from control_plane.auth.principal import Principal
from control_plane.payments import ledger, repository
from control_plane.payments.quota_sync import sync_user_or_defer
from control_plane.payments.schemas import (
    AdminPayment,
    AdminPaymentDetail,
    AdminPaymentPage,
    AdminPaymentQuery,
    ManualCreditBody,
    ManualCreditOut,
    PaymentEventOut,
    RefundBody,
    RefundOut,
)
from control_plane.payments.service import payment_not_found, payment_out, services_of
from control_plane.state import ControlPlaneState

_CENT = Decimal("0.01")


def _bad_amount(message: str) -> ApiError:
    return invalid("amount_usd", message)


def _admin_out(row: asyncpg.Record, email: str) -> AdminPayment:
    return AdminPayment(
        payment_out(row), str(row["user_id"]), email, row["payment_id"], row["provider_ref"]
    )


async def list_payments(state: ControlPlaneState, query: AdminPaymentQuery) -> AdminPaymentPage:
    where, args = where_clause(
        ("p.status = ${}", query.status),
        ("p.payment_method = ${}", query.provider),
        ("p.user_id = ${}", str(query.user_id) if query.user_id else None),
        ("lower(u.email) LIKE ${}", like_pattern(query.q.strip().lower()) if query.q else None),
        ("p.created_at >= ${}", query.created_from),
        ("p.created_at < ${}", query.created_to),
    )
    async with state.db.acquire() as connection:
        rows, total = await repository.list_payments(
            connection, where=where, args=args, limit=query.page_size, offset=query.offset
        )
    items = [_admin_out(row, row["email"]) for row in rows]
    return AdminPaymentPage(items, query.page, query.page_size, total)


async def _email(connection: DbConnection, user_id: str) -> str:
    return str(await connection.fetchval("SELECT email FROM users WHERE id = $1", user_id))


async def payment_detail(state: ControlPlaneState, raw_id: str) -> AdminPaymentDetail:
    payment_id = parse_id(raw_id, ErrorCode.RESOURCE_NOT_FOUND, "No payment with this id.")
    async with state.db.acquire() as connection:
        row = await repository.payment(connection, payment_id)
        if row is None:
            raise payment_not_found()
        email = await _email(connection, str(row["user_id"]))
        events = await repository.payment_events(connection, payment_id)
    return AdminPaymentDetail(
        _admin_out(row, email),
        [
            PaymentEventOut(
                event["event_id"],
                event["event_type"],
                event["outcome"],
                event["attempts"],
                event["received_at"],
                event["processed_at"],
            )
            for event in events
        ],
    )


async def refund(
    state: ControlPlaneState, actor: Principal, raw_id: str, body: RefundBody, ip: str | None
) -> RefundOut:
    """Refund (part of) a completed payment. Stripe: the refund is asked of Stripe, whose
    `charge.refunded` event then takes the units back (one path for every refund, however it
    was started). Coinbase has no refunds: the crypto goes back outside it, and this records
    it, taking the units back now."""
    payment_id = parse_id(raw_id, ErrorCode.RESOURCE_NOT_FOUND, "No payment with this id.")
    services = services_of(state)
    wanted = body.amount_usd
    if wanted is not None and (wanted <= 0 or wanted != wanted.quantize(_CENT)):
        raise _bad_amount("A positive amount in whole cents")
    async with state.db.acquire() as connection:
        row = await repository.payment(connection, payment_id)
    if row is None:
        raise payment_not_found()
    refundable: Decimal = row["amount_usd"] - row["refunded_usd"]
    if row["status"] != "completed" or refundable <= 0:
        raise ApiError(ErrorCode.CONFLICT, f"A {row['status']} payment cannot be refunded.")
    amount = wanted if wanted is not None else refundable
    if amount > refundable:
        raise _bad_amount(f"At most {refundable} can be refunded")
    provider = services.provider(row["payment_method"])
    details = {"amount_usd": str(amount), "reason": body.reason, "provider": provider.name}
    if row["payment_method"] == "stripe":
        if row["provider_ref"] is None:
            raise ApiError(ErrorCode.CONFLICT, "Stripe has not told us this payment's intent.")
        key = f"refund-{payment_id}-{row['refunded_usd']}-{amount}"
        await provider.refund(row["provider_ref"], amount, idempotency_key=key)
        async with state.db.acquire() as connection, connection.transaction():
            await audit.record(
                connection, actor=actor, action="payment.refund", target_type="payment",
                target_id=payment_id, details={**details, "refund": "requested"}, ip=ip,
            )  # fmt: skip
            fresh = await repository.payment(connection, payment_id)
        assert fresh is not None
        return RefundOut(_admin_out(fresh, await _email_of(state, fresh)), "requested")
    async with state.db.acquire() as connection, connection.transaction():
        locked = await repository.payment(connection, payment_id, for_update=True)
        assert locked is not None
        if locked["status"] != "completed" or locked["refunded_usd"] != row["refunded_usd"]:
            raise ApiError(ErrorCode.CONFLICT, "The payment changed meanwhile; look again.")
        outcome = await ledger.take_back(
            connection, locked, refunded=locked["refunded_usd"] + amount
        )
        await audit.record(
            connection, actor=actor, action="payment.refund", target_type="payment",
            target_id=payment_id, details={**details, "refund": "recorded", "outcome": outcome},
            ip=ip,
        )  # fmt: skip
    await sync_user_or_defer(state.db, state.redis, services.scripts, str(row["user_id"]))
    async with state.db.acquire() as connection:
        fresh = await repository.payment(connection, payment_id)
    assert fresh is not None
    return RefundOut(_admin_out(fresh, await _email_of(state, fresh)), "recorded")


async def _email_of(state: ControlPlaneState, row: asyncpg.Record) -> str:
    async with state.db.acquire() as connection:
        return await _email(connection, str(row["user_id"]))


async def manual_credit(
    state: ControlPlaneState, actor: Principal, raw_id: str, body: ManualCreditBody,
    ip: str | None,
) -> ManualCreditOut:  # fmt: skip
    user_id = parse_id(raw_id, ErrorCode.USER_NOT_FOUND)
    services = services_of(state)
    async with state.db.acquire() as connection, connection.transaction():
        user = await connection.fetchrow(
            "SELECT user_type, status FROM users WHERE id = $1 FOR UPDATE", user_id
        )
        if user is None:
            raise ApiError(ErrorCode.USER_NOT_FOUND)
        if user["user_type"] != "developer":
            raise ApiError(ErrorCode.INVALID_REQUEST, "Only developers hold quota.")
        if user["status"] == "deleted":
            raise ApiError(ErrorCode.CONFLICT, "A deleted account cannot be credited.")
        await repository.adjust_quota(
            connection, user_id=user_id, payment_id=None, kind="manual_credit",
            units=body.units, take_back=False, actor_id=actor.user_id, reason=body.reason,
        )  # fmt: skip
        seq = await connection.fetchval("SELECT adjust_seq FROM quotas WHERE user_id = $1", user_id)
        await audit.record(
            connection, actor=actor, action="quota.credit", target_type="user",
            target_id=user_id, details={"units": body.units, "reason": body.reason, "seq": seq},
            ip=ip,
        )  # fmt: skip
    applied = await sync_user_or_defer(state.db, state.redis, services.scripts, user_id)
    return ManualCreditOut(user_id, body.units, int(seq), applied)
