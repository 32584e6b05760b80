"""Payout providers: how a withdrawal's money leaves. One module per provider behind the small
`PayoutProvider` protocol in base.py; `build_providers` makes the configured ones."""

from __future__ import annotations

from control_plane.earnings.payouts.base import PayoutProvider
from control_plane.earnings.payouts.ledger import LedgerPayouts
from control_plane.earnings.payouts.stripe_connect import StripeConnectPayouts
from control_plane.payments.settings import PaymentSettings


def build_providers(payments: PaymentSettings) -> dict[str, PayoutProvider]:
    """Every provider that can run, by name, whatever PAYOUT_PROVIDERS offers new withdrawals
    now: one made while a provider was offered must still complete after a switch. `stripe`
    runs when Stripe is configured (STRIPE_SECRET_KEY); an `onchain` provider joins here."""
    providers: dict[str, PayoutProvider] = {"ledger": LedgerPayouts()}
    if payments.stripe is not None:
        providers["stripe"] = StripeConnectPayouts(
            payments.stripe, timeout_s=payments.provider_timeout_s
        )
    return providers
