"""The payout provider protocol, its outcomes and its one exception.

A provider pays a `Payout` (a withdrawal's net amount to its destination) and can be asked
later what became of one. Both calls carry the payout's idempotency key (derived from the
withdrawal id), so paying again after an attempt whose outcome is unknown can never pay twice:
the provider returns the first attempt's result.

Outcomes: `Paid(reference)` (money left; the reference traces it at the provider),
`Declined(reason)` (the provider refused; nothing left, so the withdrawal fails and its amount
returns to the creator's available balance) or `InFlight(state)` (the provider has taken the
payout and finishes it on its own, as the chain outbox does; the withdrawal stays in flight
and is looked at again later). Anything else (timeout, connection reset, a
provider 5xx) raises `PayoutOutcomeUnknown`: the worker keeps the withdrawal in flight and asks
the provider (`find`) before trying again. An unknown outcome is never turned into a failure,
because failing returns money that may already have been paid.

Providers: `ledger` (records only: an operator pays by hand; the default locally), `stripe`
(Stripe Connect transfers), `onchain` (a stablecoin payment from the payout vault to the
creator's wallet, sent by the chain outbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Payout:
    withdrawal_id: str
    creator_id: str
    amount: Decimal  # the net amount to send, in whole cents
    currency: str
    destination: str | None  # a Connect account id, a wallet; None for the ledger

    @property
    def idempotency_key(self) -> str:
        return f"withdrawal-{self.withdrawal_id}"


@dataclass(frozen=True, slots=True)
class Paid:
    reference: str
    tx_hash: str | None = None  # an on-chain payout's transaction (withdrawals.tx_hash)


@dataclass(frozen=True, slots=True)
class Declined:
    reason: str


@dataclass(frozen=True, slots=True)
class InFlight:
    state: str  # what the provider says it is doing, for the withdrawal's last_error


PayoutOutcome = Paid | Declined | InFlight


class PayoutOutcomeUnknown(Exception):
    """The provider may or may not have paid: ask it (`find`) before trying again."""


class PayoutProvider(Protocol):
    name: str

    async def pay(self, payout: Payout) -> PayoutOutcome:
        """Send the payout (idempotent by `payout.idempotency_key`)."""
        ...

    async def find(self, payout: Payout) -> PayoutOutcome | None:
        """What the provider knows of an earlier attempt; None if it never saw one."""
        ...

    async def aclose(self) -> None: ...
