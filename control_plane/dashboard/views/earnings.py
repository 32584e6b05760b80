"""A creator's money: balances (pending, available, withdrawn), settlements, withdrawals (asked
for here, paid by the worker through the payout provider) and the Stripe payout account.

Every number comes from the earnings service, the same as `/api/v1/creators/me/...`: the
available balance is checked under a lock there, so two withdrawal forms sent at once can
never take more than is there. Each form render carries a fresh idempotency key, so a form
sent twice (a double click, a reload) makes one withdrawal.
"""

from __future__ import annotations

import uuid

from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.creators import service as creators
from control_plane.dashboard.forms import Errors, convert, form_errors
from control_plane.dashboard.pages import Page, PageContext
from control_plane.earnings import payout_account
from control_plane.earnings import service as earnings
from control_plane.earnings.payout_account import PayoutAccount
from control_plane.earnings.schemas import CreateWithdrawal, PageQuery

CREATORS = frozenset({UserType.CREATOR})
METHOD_NAMES = {
    "ledger": "Platform ledger (manual payout)",
    "stripe": "Stripe (bank account)",
    "onchain": "Stablecoin to your wallet (on chain)",
}


def _cursor_query(ctx: PageContext, name: str) -> PageQuery:
    cursor = ctx.query.get(name) or None
    query: PageQuery = convert({"limit": 20, **({"cursor": cursor} if cursor else {})}, PageQuery)
    return query


async def _account(ctx: PageContext) -> PayoutAccount | str | None:
    """The Stripe payout account (None: Stripe payouts are not offered; str: unavailable)."""
    if "stripe" not in ctx.state.settings.earnings.payout_providers:
        return None
    if ctx.state.settings.payments.stripe is None:
        return None
    try:
        return await payout_account.status(ctx.state, ctx.user)
    except ApiError as error:
        return error.message


async def _page(
    ctx: PageContext, *, errors: Errors | None = None, values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:  # fmt: skip
    settings = ctx.state.settings.earnings
    balances = await earnings.balances(ctx.state, ctx.user)
    settlements = await earnings.creator_settlements(
        ctx.state, ctx.user, _cursor_query(ctx, "settlements")
    )
    withdrawals = await earnings.list_withdrawals(
        ctx.state, ctx.user, _cursor_query(ctx, "withdrawals")
    )
    methods = [(name, METHOD_NAMES.get(name, name)) for name in settings.payout_providers]
    return ctx.render(
        "creator/earnings.html", balances=balances, settlements=settlements,
        withdrawals=withdrawals, methods=methods, account=await _account(ctx),
        profile=await creators.get_me(ctx.state, ctx.user),
        errors=errors or {}, values=values or {"method": settings.default_payout_provider},
        idempotency_key=str(uuid.uuid4()), status=status,
    )  # fmt: skip


async def earnings_page(ctx: PageContext) -> Response:
    return await _page(ctx)


async def withdraw(ctx: PageContext) -> Response:
    values = {"amount": ctx.form["amount"].strip().removeprefix("$"),
              "method": ctx.form["method"]}  # fmt: skip
    key = ctx.form["idempotency_key"] or None
    try:
        body: CreateWithdrawal = convert(
            {"amount": values["amount"], **({"method": values["method"]} if values["method"]
                                           else {})},
            CreateWithdrawal,
        )  # fmt: skip
        withdrawal, created = await earnings.create_withdrawal(ctx.state, ctx.user, body, key)
    except ApiError as error:
        errors = form_errors(error, ErrorCode.VALIDATION_FAILED, ErrorCode.CONFLICT)
        if error.code is ErrorCode.CONFLICT:
            # A balance too small is about the amount: shown next to it, like a typo would be.
            errors = {"amount": error.message}
        return await _page(ctx, errors=errors, values=values, status=error.status)
    if not created:
        return ctx.redirect("/creator/earnings", notice="That withdrawal was already requested.")
    return ctx.redirect(
        "/creator/earnings",
        notice=f"Withdrawal of ${withdrawal.amount} requested: ${withdrawal.net_amount} will be "
        f"paid after the ${withdrawal.fee} fee.",
    )


async def connect_payout_account(ctx: PageContext) -> Response:
    account = await payout_account.connect(ctx.state, ctx.user)
    # Rendered, not redirected: a form may only post to this site (CSP form-action), so the
    # hop to Stripe's onboarding is a plain navigation from our page.
    return ctx.render("creator/payout_account.html", account=account)


PAGES = [
    Page("GET", "/creator/earnings", earnings_page, users=CREATORS),
    Page("POST", "/creator/earnings/withdrawals", withdraw, users=CREATORS),
    Page("POST", "/creator/earnings/payout-account", connect_payout_account, users=CREATORS),
]
