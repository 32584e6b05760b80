"""Coinbase Commerce: charges through its HTTP API (httpx), webhooks verified by
`X-CC-Webhook-Signature` = hex HMAC-SHA256 of the raw body with the shared secret, compared
in constant time.

Coinbase's scheme signs no timestamp, so there is no replay window to check: a replayed
delivery is a duplicate event id, which the ledger stores once and acts on once. Coinbase has
no refund API; a crypto refund is made outside it and recorded by an admin
(`POST /api/v1/admin/payments/{id}/refund`), which takes the units back at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from decimal import Decimal
from typing import Any

import httpx

from control_plane.payments.providers import fields
from control_plane.payments.providers.base import (
    Action,
    CheckoutCreated,
    CheckoutRequest,
    ProviderError,
    ProviderEvent,
    WebhookRejected,
)
from control_plane.payments.settings import CoinbaseSettings

logger = logging.getLogger("agentlink.payments")

NAME = "coinbase"
API_VERSION = "2018-03-22"
# charge:resolved: an underpaid or delayed charge the merchant accepted; it is paid.
_ACTIONS = {
    "charge:confirmed": Action.CONFIRMED,
    "charge:resolved": Action.CONFIRMED,
    "charge:failed": Action.FAILED,
}


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class CoinbaseCommerce:
    name = NAME

    def __init__(self, settings: CoinbaseSettings, *, timeout_s: float) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.api_base,
            timeout=timeout_s,
            headers={"X-CC-Api-Key": settings.api_key, "X-CC-Version": API_VERSION},
        )

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutCreated:
        body = {
            "name": f"AgentLink {request.package_name}"[:100],
            "description": f"{request.units:,} calls"[:200],
            "pricing_type": "fixed_price",
            "local_price": {"amount": str(request.amount), "currency": "USD"},
            "metadata": {
                "payment_id": request.payment_id,
                "user_id": request.user_id,
                "package": request.package_id,
            },
            "redirect_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        try:
            response = await self._http.post("/charges", json=body)
            response.raise_for_status()
            charge = fields.obj(response.json(), "data")
            charge_id = fields.text(charge, "id", required=True)
            hosted_url = fields.text(charge, "hosted_url", required=True)
        except (httpx.HTTPError, ValueError, WebhookRejected) as error:
            logger.warning(
                "coinbase charge failed: %s", type(error).__name__, extra={"event": "payments"}
            )
            raise ProviderError(NAME) from None
        assert charge_id is not None
        assert hosted_url is not None
        return CheckoutCreated(charge_id, fields.text(charge, "code"), hosted_url)

    def verify(self, body: bytes, headers: dict[str, str]) -> ProviderEvent:
        given = headers.get("x-cc-webhook-signature", "").strip().lower().encode("ascii", "replace")
        if not given:
            raise WebhookRejected("no X-CC-Webhook-Signature header")
        # Every configured secret is tried, without stopping early (several while rotating).
        matched = False
        for secret in self._settings.webhook_secrets:
            matched |= hmac.compare_digest(signature(secret, body).encode("ascii"), given)
        if not matched:
            raise WebhookRejected("the Coinbase signature does not match")
        return self.parse(fields.json_body(body, "the body is not a Coinbase event"))

    def parse(self, payload: dict[str, Any]) -> ProviderEvent:
        return parse_event(payload)

    async def refund(self, provider_ref: str, amount: Decimal, *, idempotency_key: str) -> None:
        raise NotImplementedError("Coinbase Commerce has no refund API")

    async def aclose(self) -> None:
        await self._http.aclose()


def parse_event(payload: dict[str, Any]) -> ProviderEvent:
    """A Coinbase webhook body `{"id", "scheduled_for", "event": {...}}` as a ProviderEvent."""
    event = fields.obj(payload, "event")
    event_id = fields.text(event, "id", required=True)
    event_type = fields.text(event, "type", required=True)
    assert event_id is not None
    assert event_type is not None
    charge = fields.obj(event, "data")
    pricing = charge.get("pricing")
    local = pricing.get("local") if isinstance(pricing, dict) else None
    amount = fields.decimal_text(local, "amount") if isinstance(local, dict) else None
    currency = fields.text(local, "currency") if isinstance(local, dict) else None
    action = _ACTIONS.get(event_type, Action.NONE)
    reason = None
    if action is Action.FAILED:
        timeline = charge.get("timeline")
        if isinstance(timeline, list) and timeline and isinstance(timeline[-1], dict):
            reason = fields.text(timeline[-1], "context") or fields.text(timeline[-1], "status")
    return ProviderEvent(
        provider=NAME, event_id=event_id, event_type=event_type, action=action,
        payment_id=fields.metadata_payment_id(charge),
        provider_payment_id=fields.text(charge, "id"), provider_ref=fields.text(charge, "code"),
        amount=amount, currency=currency.lower() if currency else None,
        refunded=None, reason=reason, payload=payload,
    )  # fmt: skip
