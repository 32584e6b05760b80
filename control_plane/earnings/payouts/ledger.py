"""The `ledger` payout provider: records the payout in our books and nothing else. An operator
pays the creator by other means; the withdrawal row (reference `ledger:<id>`) is the record.
It is the local default, since it needs no outside account."""

from __future__ import annotations

from control_plane.earnings.payouts.base import Paid, Payout, PayoutOutcome


class LedgerPayouts:
    name = "ledger"

    async def pay(self, payout: Payout) -> PayoutOutcome:
        return Paid(f"ledger:{payout.withdrawal_id}")

    async def find(self, payout: Payout) -> PayoutOutcome | None:
        return Paid(f"ledger:{payout.withdrawal_id}")

    async def aclose(self) -> None:
        return None
