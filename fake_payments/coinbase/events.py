"""Coinbase Commerce webhooks: `{"id", "scheduled_for", "attempt_number", "event": {...}}`,
signed with `X-CC-Webhook-Signature` = hex HMAC-SHA256 of the raw body with the shared secret."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

API_VERSION = "2018-03-22"


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_event(event_type: str, charge: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "resource": "event",
        "type": event_type,
        "api_version": API_VERSION,
        "created_at": timestamp(),
        "data": charge,
    }


def envelope(event: dict[str, Any], delivery: int, attempt: int = 1) -> bytes:
    body = {"id": delivery, "scheduled_for": timestamp(), "attempt_number": attempt, "event": event}
    return orjson.dumps(body)


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def delivery_headers(body: bytes, secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "weipay-webhooks"}
    if secret is not None:
        headers["X-CC-Webhook-Signature"] = sign(secret, body)
    return headers
