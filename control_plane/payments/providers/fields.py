"""Reading fields out of a provider's (verified, but still foreign) JSON, with types checked.

A signed event with an unexpected shape is refused as malformed (WebhookRejected), never
allowed to raise a KeyError or TypeError into a 500.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from common.validation import canonical_uuid
from control_plane.payments.providers.base import WebhookRejected


def json_body(body: bytes, malformed: str) -> Any:
    """A verified webhook body parsed; `malformed` is the refusal when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookRejected(malformed) from None


def obj(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise WebhookRejected(f"the event has no object at {key!r}")
    return value


def text(parent: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = parent.get(key)
    if isinstance(value, dict):  # an expanded Stripe reference: its id
        value = value.get("id")
    if isinstance(value, str) and value:
        return value[:255]
    if required:
        raise WebhookRejected(f"the event has no {key!r}")
    return None


def metadata_payment_id(parent: dict[str, Any]) -> str | None:
    metadata = parent.get("metadata")
    if isinstance(metadata, dict):
        return our_payment_id(metadata.get("payment_id"))
    return None


def our_payment_id(value: Any) -> str | None:
    """A payment id we issued is a UUID; anything else is not ours."""
    return canonical_uuid(value) if isinstance(value, str) else None


def cents(parent: dict[str, Any], key: str) -> Decimal | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WebhookRejected(f"the event's {key!r} is not an amount in cents")
    return Decimal(value) / 100


def decimal_text(parent: dict[str, Any], key: str) -> Decimal | None:
    value = parent.get(key)
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise WebhookRejected(f"the event's {key!r} is not a decimal amount") from None
    if not amount.is_finite() or amount < 0:
        raise WebhookRejected(f"the event's {key!r} is not a decimal amount")
    return amount
