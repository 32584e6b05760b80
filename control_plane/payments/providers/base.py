"""What a payment provider adapter does, and the provider-neutral types it speaks.

An adapter (one module per provider) creates a hosted checkout for a pending payment, verifies
a webhook delivery's signature and turns the provider's event into a `ProviderEvent`: what
happened (`Action`) to which payment. Everything after that (the state machine, crediting,
refunds) is provider-neutral and lives in `control_plane/payments/ledger.py`.

Provider failures are translated at the adapter edge into `ProviderError` (503 `50301`);
a delivery that fails verification raises `WebhookRejected` (400 `40001`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from common.errors import ApiError, ErrorCode


class Action(StrEnum):
    CONFIRMED = "confirmed"  # paid: credit the package (once)
    FAILED = "failed"  # the payment did not go through
    EXPIRED = "expired"  # the checkout was abandoned
    REFUNDED = "refunded"  # (part of) the money went back: take units back
    DISPUTED = "disputed"  # the payer's bank pulled the money back: take the rest back
    NONE = "none"  # an event we store but do not act on


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    provider: str
    event_id: str
    event_type: str
    action: Action
    payment_id: str | None  # ours, from the metadata we attached at checkout
    provider_payment_id: str | None  # Stripe checkout session id / Coinbase charge id
    provider_ref: str | None  # Stripe payment intent / Coinbase charge code
    amount: Decimal | None  # the price the provider charged, in `currency`
    currency: str | None
    refunded: Decimal | None  # REFUNDED: the cumulative amount refunded so far
    reason: str | None  # FAILED / DISPUTED: why, as the provider says it
    payload: dict[str, Any]  # the event as the provider sent it (stored in payment_events)


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    payment_id: str
    user_id: str
    email: str | None
    package_id: str
    package_name: str
    units: int
    amount: Decimal  # USD
    success_url: str
    cancel_url: str


@dataclass(frozen=True, slots=True)
class CheckoutCreated:
    provider_payment_id: str
    provider_ref: str | None
    url: str


class ProviderError(ApiError):
    def __init__(self, provider: str) -> None:
        super().__init__(
            ErrorCode.UPSTREAM_UNAVAILABLE,
            f"The payment provider ({provider}) refused or did not answer; try again shortly.",
        )


class WebhookRejected(ApiError):
    """Unsigned, badly signed, stale or malformed: nothing is stored, the sender gets 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, f"Webhook rejected: {reason}.")


class PaymentProvider(Protocol):
    name: str

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutCreated: ...

    def verify(self, body: bytes, headers: dict[str, str]) -> ProviderEvent:
        """Check the delivery's signature; the event it carries. Raises WebhookRejected."""
        ...

    def parse(self, payload: dict[str, Any]) -> ProviderEvent:
        """An already verified (stored) payload as an event, for deferred retries."""
        ...

    async def refund(self, provider_ref: str, amount: Decimal, *, idempotency_key: str) -> None:
        """Ask the provider to give the money back (its refund event then takes the units
        back). Raises ProviderError; NotImplementedError where the provider has no refunds."""
        ...

    async def aclose(self) -> None: ...
