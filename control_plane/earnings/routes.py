"""Money-out routes: path → handler. A creator's balances, settlements and withdrawals; the
admin settlement routes of the seed (`/api/v1/admin/settlements/...`, payments permission)."""

from __future__ import annotations

from starlette.responses import Response

from control_plane.api import Context, RouteGroup, json_response
from control_plane.auth.principal import Permission, UserType
from control_plane.earnings import payout_account, service
from control_plane.earnings.payout_account import PayoutAccount
from control_plane.earnings.schemas import (
    Balances,
    CreateWithdrawal,
    HistoryQuery,
    PageQuery,
    PendingQuery,
    PendingSettlements,
    SettlementPage,
    TriggerResult,
    TriggerSettlement,
    WithdrawalOut,
    WithdrawalPage,
)


async def creator_earnings(context: Context) -> Balances:
    return await service.balances(context.state, context.user)


async def creator_settlements(context: Context, query: PageQuery) -> SettlementPage:
    return await service.creator_settlements(context.state, context.user, query)


async def create_withdrawal(context: Context, body: CreateWithdrawal) -> Response:
    key = context.request.headers.get("idempotency-key")
    withdrawal, created = await service.create_withdrawal(context.state, context.user, body, key)
    return json_response(withdrawal, 201 if created else 200)


async def list_withdrawals(context: Context, query: PageQuery) -> WithdrawalPage:
    return await service.list_withdrawals(context.state, context.user, query)


async def connect_payout_account(context: Context) -> PayoutAccount:
    return await payout_account.connect(context.state, context.user)


async def get_payout_account(context: Context) -> PayoutAccount:
    return await payout_account.status(context.state, context.user)


async def admin_pending_settlements(context: Context, query: PendingQuery) -> PendingSettlements:
    return await service.pending(context.state, query)


async def admin_trigger_settlements(context: Context, body: TriggerSettlement) -> TriggerResult:
    return await service.trigger(context.state, context.user, body, context.client_ip)


async def admin_settlement_history(context: Context, query: HistoryQuery) -> SettlementPage:
    return await service.history(context.state, query)


_CREATOR = RouteGroup("/api/v1/creators/me", frozenset({UserType.CREATOR}), "earnings")
_ADMIN = RouteGroup("/api/v1/admin/settlements", frozenset({UserType.ADMIN}), "admin")
_PAYMENTS = Permission.MANAGE_PAYMENTS
ROUTES = [
    _CREATOR.route("GET", "/earnings", creator_earnings,
                   "Balances: pending (accrued, unsettled), available (settled, withdrawable), "
                   "totals", response=Balances),
    _CREATOR.route("GET", "/settlements", creator_settlements,
                   "Earnings history: the creator's settlements, newest first", query=PageQuery,
                   response=SettlementPage),
    _CREATOR.route("POST", "/withdrawals", create_withdrawal,
                   "Withdraw from the available balance (Idempotency-Key header honoured)",
                   body=CreateWithdrawal, response=WithdrawalOut, status=201),
    _CREATOR.route("GET", "/withdrawals", list_withdrawals,
                   "The creator's withdrawals, newest first", query=PageQuery,
                   response=WithdrawalPage),
    _CREATOR.route("POST", "/payout-account", connect_payout_account,
                   "Connect a Stripe account for payouts; returns Stripe's onboarding link",
                   response=PayoutAccount),
    _CREATOR.route("GET", "/payout-account", get_payout_account,
                   "The Stripe account payouts go to, and whether it can receive them yet",
                   response=PayoutAccount),
    _ADMIN.route("GET", "/pending", admin_pending_settlements,
                 "Unsettled earnings per creator, largest first", query=PendingQuery,
                 response=PendingSettlements, permission=_PAYMENTS),
    _ADMIN.route("POST", "/trigger", admin_trigger_settlements,
                 "Settle every period that has ended, now (audited)", body=TriggerSettlement,
                 response=TriggerResult, permission=_PAYMENTS),
    _ADMIN.route("GET", "/history", admin_settlement_history,
                 "Settlements, newest period first (filter by creator and period)",
                 query=HistoryQuery, response=SettlementPage, permission=_PAYMENTS),
]  # fmt: skip
