"""Request and response bodies of the webhook routes. The signing secret appears in exactly one
type, `CreatedWebhook`, the answer to its creation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
EventName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CreateWebhook(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    events: Annotated[list[EventName], msgspec.Meta(min_length=1, max_length=20)]
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    # quota.low fires when the remaining quota falls to this many units (default 10).
    quota_low_threshold: Annotated[int, msgspec.Meta(ge=0, le=10**12)] | None = None


class _Webhook(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str | None
    quota_low_threshold: int
    active: bool
    created_at: datetime


class WebhookOut(_Webhook, kw_only=True):
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int


class CreatedWebhook(_Webhook, kw_only=True):
    secret: str  # `whsec_...`, shown this once: verify `AgentLink-Signature` with it
    warning: str = "Store this secret now: it cannot be shown again."


class WebhookList(msgspec.Struct):
    webhooks: list[WebhookOut]


class TestEvent(msgspec.Struct):
    event_id: str
    delivery_id: str


class AttemptOut(msgspec.Struct):
    attempt: int
    status_code: int | None
    latency_ms: int | None
    error: str | None
    attempted_at: datetime


class DeliveryOut(msgspec.Struct):
    id: str
    event_id: str
    event_type: str
    status: str  # pending (incl. waiting for a retry), delivered, failed
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempt_log: list[AttemptOut]


class DeliveryPage(msgspec.Struct):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


class DeliveryQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50
    cursor: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None
