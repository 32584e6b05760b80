"""Payout providers: how a withdrawal's money leaves. One module per provider behind the small
`PayoutProvider` protocol in base.py; `build_providers` makes the configured ones."""

from __future__ import annotations

import asyncpg

from control_plane.chain.settings import ChainSettings
from control_plane.earnings.payouts.base import PayoutProvider
from control_plane.earnings.payouts.ledger import LedgerPayouts
from control_plane.earnings.payouts.onchain import OnchainPayouts
from control_plane.earnings.payouts.stripe_connect import StripeConnectPayouts
from control_plane.payments.settings import PaymentSettings


def build_providers(
    payments: PaymentSettings, chain: ChainSettings, db: asyncpg.Pool
) -> dict[str, PayoutProvider]:
    """Every provider that can run, by name, whatever PAYOUT_PROVIDERS offers new withdrawals
    now: one made while a provider was offered must still complete after a switch. `stripe`
    runs when Stripe is configured (STRIPE_SECRET_KEY), `onchain` when the chain and its
    payout vault are (CHAIN_RPC_URL, CHAIN_PAYOUTS_ADDRESS)."""
    providers: dict[str, PayoutProvider] = {"ledger": LedgerPayouts()}
    if chain.payouts_enabled:
        providers["onchain"] = OnchainPayouts(db)
    if payments.stripe is not None:
        providers["stripe"] = StripeConnectPayouts(
            payments.stripe, timeout_s=payments.provider_timeout_s
        )
    return providers
