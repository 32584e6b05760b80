"""Stripe: Checkout Sessions through the official `stripe` library; webhooks verified with
`stripe.Webhook.construct_event` (v1 HMAC-SHA256 over `t.body`, timestamp tolerance).

Our payment id travels as the session's `client_reference_id` and in the metadata of both the
session and its payment intent, so every event (the session's, and the charge's refund or
dispute) leads back to one `payments` row. The API base comes from `STRIPE_API_BASE`: the
local stack points it at `fake_payments`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import stripe

from control_plane.payments.providers import fields
from control_plane.payments.providers.base import (
    Action,
    CheckoutCreated,
    CheckoutRequest,
    ProviderError,
    ProviderEvent,
    WebhookRejected,
)
from control_plane.payments.settings import StripeSettings

logger = logging.getLogger("agentlink.payments")

NAME = "stripe"
_SESSION_EVENTS = {
    "checkout.session.async_payment_succeeded": Action.CONFIRMED,
    "checkout.session.async_payment_failed": Action.FAILED,
    "checkout.session.expired": Action.EXPIRED,
}
_PAID = frozenset({"paid", "no_payment_required"})


class _HTTPXClient(stripe.HTTPXClient):
    """The library's httpx adapter, handing the form body to httpx as `content=`: its
    `data=<str>` is deprecated by httpx and warns on every request."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        args: list[Any] = super()._get_request_args_kwargs(method, url, headers, post_data)
        kwargs = args[1]
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return args


def stripe_client(
    settings: StripeSettings, *, timeout_s: float, retries: int | None = None
) -> tuple[_HTTPXClient, stripe.StripeClient]:
    """The library's client on STRIPE_API_BASE, and its HTTP client (closed by the owner);
    `retries` None: the library's default."""
    http = _HTTPXClient(timeout=timeout_s)
    client = stripe.StripeClient(
        settings.secret_key,
        base_addresses={"api": settings.api_base},
        http_client=http,
        max_network_retries=retries,
    )
    return http, client


class StripeCheckout:
    name = NAME

    def __init__(self, settings: StripeSettings, *, timeout_s: float) -> None:
        self._settings = settings
        self._http, self._client = stripe_client(settings, timeout_s=timeout_s, retries=2)

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutCreated:
        metadata = {
            "payment_id": request.payment_id,
            "user_id": request.user_id,
            "package": request.package_id,
        }
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": int(request.amount * 100),
                        "product_data": {
                            "name": f"AgentLink {request.package_name}",
                            "description": f"{request.units:,} calls",
                        },
                    },
                }
            ],
            "client_reference_id": request.payment_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        if request.email:
            params["customer_email"] = request.email
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]  # a plain dict of the documented params
                options={"idempotency_key": f"checkout-{request.payment_id}"},
            )
        except stripe.StripeError as error:
            logger.warning(
                "stripe checkout failed: %s", type(error).__name__, extra={"event": "payments"}
            )
            raise ProviderError(NAME) from None
        if not session.url:
            raise ProviderError(NAME)
        intent = session.payment_intent
        intent_id = intent if isinstance(intent, str) or intent is None else intent.id
        return CheckoutCreated(session.id, intent_id, session.url)

    def verify(self, body: bytes, headers: dict[str, str]) -> ProviderEvent:
        signature = headers.get("stripe-signature")
        if not signature:
            raise WebhookRejected("no Stripe-Signature header")
        for secret in self._settings.webhook_secrets:  # several while a secret is rotated
            try:
                stripe.Webhook.construct_event(
                    body, signature, secret, tolerance=self._settings.tolerance_s
                )
            except stripe.SignatureVerificationError:
                continue
            except (ValueError, TypeError, AttributeError, KeyError):
                # Verified, but the library could not build an event from it (not JSON, not
                # UTF-8, not an object): a malformed delivery, never a 500.
                raise WebhookRejected("the body is not a Stripe event") from None
            break
        else:
            raise WebhookRejected("the Stripe signature does not match or is too old")
        return self.parse(fields.json_body(body, "the body is not a Stripe event"))

    def parse(self, payload: dict[str, Any]) -> ProviderEvent:
        return parse_event(payload)

    async def refund(self, provider_ref: str, amount: Decimal, *, idempotency_key: str) -> None:
        try:
            await self._client.v1.refunds.create_async(
                {"payment_intent": provider_ref, "amount": int(amount * 100)},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            logger.warning(
                "stripe refund failed: %s", type(error).__name__, extra={"event": "payments"}
            )
            raise ProviderError(NAME) from None

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def parse_event(payload: dict[str, Any]) -> ProviderEvent:
    """A Stripe event (already verified) as a provider-neutral `ProviderEvent`."""
    if not isinstance(payload, dict) or payload.get("object") != "event":
        raise WebhookRejected("the body is not a Stripe event")
    event_id = fields.text(payload, "id", required=True)
    event_type = fields.text(payload, "type", required=True)
    assert event_id is not None
    assert event_type is not None
    data = fields.obj(fields.obj(payload, "data"), "object")
    if event_type.startswith("checkout.session."):
        action = _SESSION_EVENTS.get(event_type, Action.NONE)
        if event_type == "checkout.session.completed":
            paid = data.get("payment_status") in _PAID
            action = Action.CONFIRMED if paid else Action.NONE  # async methods: wait for them
        return ProviderEvent(
            provider=NAME, event_id=event_id, event_type=event_type, action=action,
            payment_id=fields.our_payment_id(data.get("client_reference_id"))
            or fields.metadata_payment_id(data),
            provider_payment_id=fields.text(data, "id"),
            provider_ref=fields.text(data, "payment_intent"),
            amount=fields.cents(data, "amount_total"), currency=fields.text(data, "currency"),
            refunded=None, reason=None, payload=payload,
        )  # fmt: skip
    if event_type in ("charge.refunded", "charge.dispute.created"):
        # The data is the charge (a refund) or the dispute: both carry the payment intent,
        # our metadata, the charge's amount and currency.
        refund = event_type == "charge.refunded"
        return ProviderEvent(
            provider=NAME, event_id=event_id, event_type=event_type,
            action=Action.REFUNDED if refund else Action.DISPUTED,
            payment_id=fields.metadata_payment_id(data), provider_payment_id=None,
            provider_ref=fields.text(data, "payment_intent"),
            amount=fields.cents(data, "amount"), currency=fields.text(data, "currency"),
            refunded=fields.cents(data, "amount_refunded") if refund else None,
            reason=None if refund else fields.text(data, "reason"), payload=payload,
        )  # fmt: skip
    return ProviderEvent(
        provider=NAME, event_id=event_id, event_type=event_type, action=Action.NONE,
        payment_id=fields.metadata_payment_id(data), provider_payment_id=None,
        provider_ref=None, amount=None, currency=None, refunded=None, reason=None,
        payload=payload,
    )  # fmt: skip
