"""The `stripe` payout provider: a Stripe Connect transfer from the platform balance to the
creator's connected (Express) account, through the official `stripe` library.

Each transfer carries the withdrawal's idempotency key and `transfer_group=withdrawal_<id>`,
so `find` can ask Stripe what became of an attempt whose answer never came (list transfers of
that group), and a repeated `pay` returns the first transfer instead of a second one. Stripe
refusing (the account cannot receive transfers yet, the platform balance is short) is a
`Declined`: nothing left, the withdrawal fails and its amount goes back. A timeout, a
connection error or a 5xx is `PayoutOutcomeUnknown`. The library does not retry by itself
here: the worker's own retry asks first.

Creators connect an account with `POST /api/v1/creators/me/payout-account` (an Express account
and its onboarding link, `connect_account` below). `STRIPE_API_BASE` points the local stack at
`fake_payments`.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import stripe

from control_plane.earnings.payouts.base import (
    Declined,
    Paid,
    Payout,
    PayoutOutcome,
    PayoutOutcomeUnknown,
)
from control_plane.payments.providers.stripe_checkout import stripe_client
from control_plane.payments.settings import StripeSettings

logger = logging.getLogger("agentlink.worker.payouts")


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def transfer_group(payout: Payout) -> str:
    return f"withdrawal_{payout.withdrawal_id}"


class StripeConnectPayouts:
    name = "stripe"

    def __init__(self, settings: StripeSettings, *, timeout_s: float) -> None:
        self._http, self._client = stripe_client(settings, timeout_s=timeout_s, retries=0)

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def pay(self, payout: Payout) -> PayoutOutcome:
        if not payout.destination:
            return Declined("no Stripe account to pay to")
        params: dict[str, Any] = {
            "amount": _cents(payout.amount),
            "currency": payout.currency,
            "destination": payout.destination,
            "transfer_group": transfer_group(payout),
            "description": f"AgentLink earnings, withdrawal {payout.withdrawal_id}",
            "metadata": {"withdrawal_id": payout.withdrawal_id, "creator_id": payout.creator_id},
        }
        try:
            transfer = await self._client.v1.transfers.create_async(
                params,  # type: ignore[arg-type]  # a plain dict of the documented params
                options={"idempotency_key": payout.idempotency_key},
            )
        except (stripe.InvalidRequestError, stripe.PermissionError, stripe.CardError) as error:
            return Declined(f"stripe: {error.user_message or error.code or 'refused'}"[:500])
        except stripe.StripeError as error:
            raise PayoutOutcomeUnknown(f"stripe: {type(error).__name__}") from None
        return Paid(transfer.id)

    async def find(self, payout: Payout) -> PayoutOutcome | None:
        try:
            found = await self._client.v1.transfers.list_async(
                {"transfer_group": transfer_group(payout), "limit": 10}
            )
        except stripe.StripeError as error:
            raise PayoutOutcomeUnknown(f"stripe: {type(error).__name__}") from None
        for transfer in found.data:
            if not transfer.reversed:
                return Paid(transfer.id)
        return None


async def connect_account(
    settings: StripeSettings, *, email: str, creator_id: str, return_url: str, timeout_s: float
) -> tuple[str, str]:
    """A new Express account for the creator and its onboarding link: (account id, url)."""
    http, client = stripe_client(settings, timeout_s=timeout_s)
    try:
        account = await client.v1.accounts.create_async(
            {
                "type": "express",
                "email": email,
                "capabilities": {"transfers": {"requested": True}},
                "metadata": {"creator_id": creator_id},
            },
            options={"idempotency_key": f"connect-{creator_id}"},
        )
        link = await client.v1.account_links.create_async(
            {
                "account": account.id,
                "refresh_url": return_url,
                "return_url": return_url,
                "type": "account_onboarding",
            }
        )
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    return account.id, link.url


async def account_status(
    settings: StripeSettings, account_id: str, *, timeout_s: float
) -> dict[str, bool]:
    http, client = stripe_client(settings, timeout_s=timeout_s)
    try:
        account = await client.v1.accounts.retrieve_async(account_id)
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    return {
        "details_submitted": bool(account.details_submitted),
        "payouts_enabled": bool(account.payouts_enabled),
    }
