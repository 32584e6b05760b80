"""Stripe events: built from an object's current state, signed exactly as Stripe signs them
(`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one `v1` per secret while
a secret is rotated) and POSTed to the webhook URL."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import orjson

from fake_payments.stripe.wire import API_VERSION, new_id, now


def build_event(
    event_type: str, obj: dict[str, Any], *, created: int | None = None
) -> dict[str, Any]:
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created if created is not None else now(),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def sign(body: bytes, secrets: Sequence[str], *, timestamp: int | None = None) -> str:
    moment = timestamp if timestamp is not None else now()
    signed = f"{moment}.".encode() + body
    signatures = [
        hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest() for secret in secrets
    ]
    return ",".join([f"t={moment}", *(f"v1={signature}" for signature in signatures)])


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_INDENT_2)


def delivery_headers(
    body: bytes, secrets: Sequence[str], timestamp: int | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": sign(body, secrets, timestamp=timestamp),
    }
