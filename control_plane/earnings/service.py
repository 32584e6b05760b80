"""The money-out API: a creator's balances, settlements and withdrawals; the admin's pending
list, manual trigger and history of settlements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from common.errors import ApiError, ErrorCode
from common.validation import invalid, money_text
from control_plane import audit
from control_plane.auth.principal import Principal
from control_plane.chain import proofs
from control_plane.earnings import settlements
from control_plane.earnings.money import (
    parse_cents,
    period_end_after,
    period_end_at_or_before,
    settlement_fee,
)
from control_plane.earnings.schemas import (
    Balances,
    CreateWithdrawal,
    HistoryQuery,
    PageQuery,
    PendingCreator,
    PendingQuery,
    PendingSettlements,
    SettlementOut,
    SettlementPage,
    TriggerResult,
    TriggerSettlement,
    WithdrawalOut,
    WithdrawalPage,
)
from control_plane.earnings.settings import EarningsSettings
from control_plane.earnings.withdrawals import (
    WITHDRAWAL_COLUMNS,
    WithdrawalRefused,
    WithdrawalRequest,
    request_withdrawal,
)
from control_plane.marketplace.pagination import (
    decode_cursor,
    encode_cursor,
    is_uuid,
    keyset_page,
    newest_first_after,
    newest_first_cursor,
    parse_datetime,
    parse_decimal,
    parse_uuid,
)
from control_plane.rows import from_row
from control_plane.state import ControlPlaneState

_SETTLEMENT_COLUMNS = """id, creator_id, period_start, period_end, calls, amount, platform_fee,
    net_amount, fee_percent, status, settled_at, created_at"""


def _settings(state: ControlPlaneState) -> EarningsSettings:
    return state.settings.earnings


def settlement_out(row: asyncpg.Record) -> SettlementOut:
    return from_row(
        SettlementOut, row, gross=money_text(row["amount"]), net=money_text(row["net_amount"])
    )


def withdrawal_out(row: asyncpg.Record) -> WithdrawalOut:
    return from_row(
        WithdrawalOut, row, method=row["payout_provider"], reference=row["provider_reference"]
    )


# -- creators ---------------------------------------------------------------------------------


async def balances(state: ControlPlaneState, principal: Principal) -> Balances:
    settings = _settings(state)
    row = await state.db.fetchrow(
        """SELECT p.pending_earnings, p.available_balance, p.total_earnings,
                  coalesce(sum(w.amount) FILTER (WHERE w.status IN ('pending', 'processing')),
                           0) AS in_flight,
                  coalesce(sum(w.amount) FILTER (WHERE w.status = 'completed'), 0) AS withdrawn
           FROM users u
           LEFT JOIN creator_profiles p ON p.user_id = u.id
           LEFT JOIN withdrawals w ON w.creator_id = u.id
           WHERE u.id = $1
           GROUP BY p.user_id""",
        principal.user_id,
    )
    zero = Decimal(0)
    pending = (row and row["pending_earnings"]) or zero
    return Balances(
        pending_earnings=money_text(pending),
        pending_platform_fee=money_text(settlement_fee(pending, settings.platform_fee_percent)),
        available_balance=money_text((row and row["available_balance"]) or zero),
        total_earnings=money_text((row and row["total_earnings"]) or zero),
        withdrawals_in_flight=money_text((row and row["in_flight"]) or zero),
        withdrawn=money_text((row and row["withdrawn"]) or zero),
        platform_fee_percent=money_text(settings.platform_fee_percent),
        withdrawal_fee_percent=money_text(settings.withdrawal_fee_percent),
        withdrawal_minimum=money_text(settings.withdrawal_min),
        next_settlement_at=period_end_after(datetime.now(UTC), settings.settlement_period_hours)
        + timedelta(seconds=settings.settlement_grace_s),
    )


async def _settlement_page(
    state: ControlPlaneState,
    *,
    creator_id: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> SettlementPage:
    params: list[Any] = [creator_id, start, end, limit + 1]
    after = ""
    if cursor is not None:
        period_end, settlement_id = decode_cursor(
            cursor, "settlements", (parse_datetime, parse_uuid)
        )
        params += [period_end, settlement_id]
        after = "AND (period_end < $5 OR (period_end = $5 AND id > $6::uuid))"
    rows = await state.db.fetch(
        f"""SELECT {_SETTLEMENT_COLUMNS} FROM settlements
            WHERE ($1::uuid IS NULL OR creator_id = $1::uuid)
              AND ($2::timestamptz IS NULL OR period_end > $2)
              AND ($3::timestamptz IS NULL OR period_start < $3) {after}
            ORDER BY period_end DESC, id LIMIT $4""",  # noqa: S608 - constant clauses
        *params,
    )
    page, next_cursor = keyset_page(rows, limit, "settlements", "period_end")
    return SettlementPage([settlement_out(row) for row in page], next_cursor)


async def creator_settlements(
    state: ControlPlaneState, principal: Principal, query: PageQuery
) -> SettlementPage:
    page = await _settlement_page(
        state, creator_id=principal.user_id, start=None, end=None, limit=query.limit,
        cursor=query.cursor,
    )  # fmt: skip
    return await proofs.with_settlement_proofs(state, page)


_REFUSAL_CODES = {
    "below_minimum": ErrorCode.VALIDATION_FAILED,
    "insufficient_balance": ErrorCode.CONFLICT,
    "no_destination": ErrorCode.CONFLICT,
    "no_profile": ErrorCode.CONFLICT,
}


async def create_withdrawal(
    state: ControlPlaneState,
    principal: Principal,
    body: CreateWithdrawal,
    idempotency_key: str | None,
) -> tuple[WithdrawalOut, bool]:
    settings = _settings(state)
    amount = parse_cents(body.amount)
    if amount is None:
        raise invalid("amount", "A positive amount in USD with at most two decimals.")
    method = body.method or settings.default_payout_provider
    if method not in settings.payout_providers:
        raise invalid(
            "method", f"Payouts are available by: {', '.join(settings.payout_providers)}."
        )
    if method == "stripe" and state.settings.payments.stripe is None:
        raise invalid("method", "Payouts by Stripe are not configured here.")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise invalid("Idempotency-Key", "At most 255 characters.")
    try:
        row, created = await request_withdrawal(
            state.db,
            settings,
            WithdrawalRequest(principal.user_id, amount, method, idempotency_key),
        )
    except WithdrawalRefused as refused:
        code = _REFUSAL_CODES[refused.reason]
        details = [{"field": "amount", "message": refused.message}]
        raise ApiError(code, refused.message, details=details) from None
    return withdrawal_out(row), created


async def list_withdrawals(
    state: ControlPlaneState, principal: Principal, query: PageQuery
) -> WithdrawalPage:
    after, after_params = newest_first_after(query.cursor, "withdrawals")
    params: list[Any] = [principal.user_id, query.limit + 1, *after_params]
    rows = await state.db.fetch(
        f"""SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals
            WHERE creator_id = $1 {after}
            ORDER BY created_at DESC, id LIMIT $2""",  # noqa: S608 - constant clauses
        *params,
    )
    page = [withdrawal_out(row) for row in rows[: query.limit]]
    return WithdrawalPage(page, newest_first_cursor("withdrawals", rows, query.limit))


# -- admin ------------------------------------------------------------------------------------


def _creator_filter(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not is_uuid(raw):
        raise invalid("creator_id", "Expected a UUID.")
    return raw


async def pending(state: ControlPlaneState, query: PendingQuery) -> PendingSettlements:
    """Unsettled accruals per creator, largest first."""
    settings = _settings(state)
    due_through = period_end_at_or_before(
        datetime.now(UTC) - timedelta(seconds=settings.settlement_grace_s),
        settings.settlement_period_hours,
    )
    params: list[Any] = [due_through, query.limit + 1]
    after = ""
    if query.cursor is not None:
        gross, creator_id = decode_cursor(query.cursor, "pending", (parse_decimal, parse_uuid))
        params += [gross, creator_id]
        after = "WHERE (gross < $3 OR (gross = $3 AND creator_id > $4::uuid))"
    rows = await state.db.fetch(
        f"""SELECT * FROM (
                SELECT e.creator_id, p.display_name, sum(e.gross) AS gross,
                       sum(e.calls)::bigint AS calls, min(e.accrued_hour) AS oldest,
                       max(e.accrued_hour) AS newest,
                       bool_or(e.accrued_hour < $1) AS due
                FROM earnings_accruals e
                LEFT JOIN creator_profiles p ON p.user_id = e.creator_id
                WHERE e.settlement_id IS NULL
                GROUP BY e.creator_id, p.display_name
            ) t {after}
            ORDER BY gross DESC, creator_id LIMIT $2""",  # noqa: S608 - constant clauses
        *params,
    )
    total = await state.db.fetchval(
        "SELECT coalesce(sum(gross), 0) FROM earnings_accruals WHERE settlement_id IS NULL"
    )
    page = rows[: query.limit]
    creators = []
    for row in page:
        fee = settlement_fee(row["gross"], settings.platform_fee_percent)
        creators.append(
            PendingCreator(
                creator_id=str(row["creator_id"]),
                display_name=row["display_name"],
                calls=row["calls"],
                gross=money_text(row["gross"]),
                estimated_fee=money_text(fee),
                estimated_net=money_text(row["gross"] - fee),
                oldest_accrual=row["oldest"],
                newest_accrual=row["newest"],
                due=row["due"],
            )
        )
    next_cursor = None
    if len(rows) > query.limit:
        last = page[-1]
        next_cursor = encode_cursor("pending", [str(last["gross"]), str(last["creator_id"])])
    return PendingSettlements(creators, money_text(total), due_through, next_cursor)


async def trigger(
    state: ControlPlaneState, principal: Principal, body: TriggerSettlement, ip: str | None
) -> TriggerResult:
    """Settle now every period that is over (no grace), up to `through`."""
    creator_id = _creator_filter(body.creator_id)
    now = datetime.now(UTC)
    through = body.through or now
    if through > now:
        raise invalid("through", "A period that has not ended cannot be settled.")
    run = await settlements.settle_due(
        state.db, _settings(state), now=through, grace=timedelta(0), creator_id=creator_id
    )
    async with state.db.acquire() as connection:
        rows = await connection.fetch(
            f"SELECT {_SETTLEMENT_COLUMNS} FROM settlements"  # noqa: S608 - constant columns
            " WHERE id = ANY($1::uuid[]) ORDER BY creator_id, period_end",
            [s.settlement_id for s in run.settlements],
        )
        await audit.record(
            connection,
            actor=principal,
            action="settlement.trigger",
            target_type="settlement_run",
            target_id=creator_id,
            details={
                "through": run.through.isoformat() if run.through else None,
                "settlements": len(run.settlements),
                "gross": str(run.gross),
                "net": str(run.net),
            },
            ip=ip,
        )
    assert run.through is not None
    return TriggerResult(
        settlements=[settlement_out(row) for row in rows],
        through=run.through,
        gross=money_text(run.gross),
        platform_fees=money_text(run.fees),
        net=money_text(run.net),
    )


async def history(state: ControlPlaneState, query: HistoryQuery) -> SettlementPage:
    if query.from_ and query.to and query.from_ >= query.to:
        raise invalid("from", "`from` must be before `to`.")
    return await _settlement_page(
        state, creator_id=_creator_filter(query.creator_id), start=query.from_, end=query.to,
        limit=query.limit, cursor=query.cursor,
    )  # fmt: skip
