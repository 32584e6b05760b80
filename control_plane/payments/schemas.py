"""Request, query and response bodies of the payment routes (developer, webhook and admin)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from control_plane.admin.schemas import Reason, Search
from control_plane.schema_types import Moment, PageQuery

Provider = Literal["stripe", "coinbase"]
PaymentStatus = Literal["pending", "completed", "failed", "expired", "refunded", "disputed"]
PackageId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
CreditUnits = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
# USD as a decimal string (msgspec documents a Decimal only as `format: decimal`).
RefundAmount = Annotated[
    Decimal, msgspec.Meta(extra_json_schema={"pattern": r"^[0-9]{1,10}(\.[0-9]{1,8})?$"})
]


class PackageOut(msgspec.Struct):
    id: str
    name: str
    units: int  # quota units (calls of a standard agent)
    price_usd: Decimal
    currency: str = "usd"


class PackageList(msgspec.Struct):
    packages: list[PackageOut]
    providers: list[str]  # the ones configured on this deployment


class CheckoutBody(msgspec.Struct, forbid_unknown_fields=True):
    package: PackageId
    provider: Provider


class PaymentOut(msgspec.Struct):
    id: str
    provider: str
    package: str | None
    status: str
    amount_usd: Decimal
    currency: str
    units: int
    refunded_usd: Decimal
    refunded_units: int  # units the refunds or dispute concern
    lost_units: int  # of those, already used when they were taken back
    checkout_url: str | None  # while pending: where to pay
    failure_reason: str | None
    created_at: datetime
    completed_at: datetime | None


class PaymentPage(msgspec.Struct):
    items: list[PaymentOut]
    next_cursor: str | None


class HistoryQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    cursor: Cursor | None = None


class WebhookAck(msgspec.Struct):
    received: bool
    outcome: str


# --- admin ------------------------------------------------------------------------------------


class AdminPaymentQuery(PageQuery, forbid_unknown_fields=True):
    status: PaymentStatus | None = None
    provider: Provider | None = None
    user_id: uuid.UUID | None = None
    q: Search | None = None  # email substring, case-insensitive
    created_from: Moment | None = None
    created_to: Moment | None = None


class AdminPayment(msgspec.Struct):
    payment: PaymentOut
    user_id: str
    email: str
    provider_payment_id: str | None
    provider_ref: str | None


class AdminPaymentPage(msgspec.Struct):
    items: list[AdminPayment]
    page: int
    page_size: int
    total: int


class PaymentEventOut(msgspec.Struct):
    event_id: str
    event_type: str | None
    outcome: str
    attempts: int
    received_at: datetime
    processed_at: datetime | None


class AdminPaymentDetail(msgspec.Struct):
    payment: AdminPayment
    events: list[PaymentEventOut]


class RefundBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason
    amount_usd: RefundAmount | None = None  # default: what has not been refunded yet


class RefundOut(msgspec.Struct):
    payment: AdminPayment
    # requested: the provider was asked and its refund event takes the units back;
    # recorded: a provider without refunds (Coinbase): the units were taken back now.
    refund: Literal["requested", "recorded"]


class ManualCreditBody(msgspec.Struct, forbid_unknown_fields=True):
    units: CreditUnits
    reason: Reason


class ManualCreditOut(msgspec.Struct):
    user_id: str
    units: int
    adjustment_seq: int
    applied_to_gateway: bool  # False: Redis was away; the worker's reconciler applies it
