"""The events developers can subscribe to, and the JSON body every delivery carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

QUOTA_LOW = "quota.low"  # remaining quota fell to the endpoint's threshold
QUOTA_EXHAUSTED = "quota.exhausted"  # remaining quota reached zero
PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_REFUNDED = "payment.refunded"
AGENT_PUBLISHED = "agent.published"  # to its creator and the developers who called it
AGENT_UPDATED = "agent.updated"  # a new version: to its creator and the developers who called it
KEY_REVOKED = "key.revoked"
WEBHOOK_TEST = "webhook.test"  # POST /webhooks/{id}/test, to that endpoint only

EVENT_TYPES = frozenset(
    {QUOTA_LOW, QUOTA_EXHAUSTED, PAYMENT_SUCCEEDED, PAYMENT_REFUNDED, AGENT_PUBLISHED,
     AGENT_UPDATED, KEY_REVOKED}
)  # fmt: skip


def body(event_id: str, event_type: str, created_at: datetime, data: Any) -> bytes:
    """What is POSTed: the same bytes on every attempt (keys sorted), so a receiver can
    dedupe on `id` and verify the signature over exactly what it got."""
    return orjson.dumps(
        {"id": event_id, "type": event_type, "created_at": created_at.isoformat(), "data": data},
        option=orjson.OPT_SORT_KEYS,
    )
