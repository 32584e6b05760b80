"""Payout providers: how a withdrawal's money leaves. One module per provider behind the small
`PayoutProvider` protocol in base.py; `build_providers` makes the configured ones."""

from __future__ import annotations

from control_plane.earnings.payouts.base import PayoutProvider
from control_plane.earnings.payouts.ledger import LedgerPayouts
from control_plane.earnings.settings import EarningsSettings


def build_providers(settings: EarningsSettings) -> dict[str, PayoutProvider]:
    """The providers PAYOUT_PROVIDERS names, by name. The ledger is always there: withdrawals
    made while it was configured must still complete after a switch."""
    providers: dict[str, PayoutProvider] = {"ledger": LedgerPayouts()}
    return providers
