"""The developer's side of payments: packages, checkout, history; and the webhook receivers.

Checkout writes a `pending` payment first (so a webhook can never name a payment we do not
know), then asks the provider for a hosted checkout with our payment id attached, and returns
its URL. The provider's webhook then moves the payment (control_plane/payments/ledger.py).
"""

from __future__ import annotations

import asyncpg
from starlette.requests import Request

from common.asgi import read_body
from common.errors import ApiError, ErrorCode
from common.validation import invalid
from control_plane.auth.principal import Principal
from control_plane.feature_flags.service import Flag, is_enabled
from control_plane.marketplace.pagination import (
    decode_cursor,
    is_uuid,
    keyset_page,
    parse_datetime,
    parse_uuid,
)
from control_plane.payments import ledger, repository
from control_plane.payments.providers.base import CheckoutRequest, ProviderError
from control_plane.payments.schemas import (
    CheckoutBody,
    HistoryQuery,
    PackageList,
    PackageOut,
    PaymentOut,
    PaymentPage,
    WebhookAck,
)
from control_plane.payments.services import PaymentServices
from control_plane.state import ControlPlaneState

# Unfinished checkouts one developer may open per day: enough for any honest retrying,
# too few to fill the payments table or the provider account with junk sessions.
MAX_OPEN_CHECKOUTS_PER_DAY = 20
_HISTORY_CURSOR = "payments"


def services_of(state: ControlPlaneState) -> PaymentServices:
    if state.payments is None:
        raise ApiError(ErrorCode.UPSTREAM_UNAVAILABLE, "Payments are not set up on this server.")
    return state.payments


def payment_out(row: asyncpg.Record) -> PaymentOut:
    return PaymentOut(
        id=str(row["id"]), provider=row["payment_method"], package=row["package"],
        status=row["status"], amount_usd=row["amount_usd"], currency=row["currency"],
        units=row["quota_purchased"], refunded_usd=row["refunded_usd"],
        refunded_units=row["refunded_units"], lost_units=row["lost_units"],
        checkout_url=row["checkout_url"] if row["status"] == "pending" else None,
        failure_reason=row["failure_reason"], created_at=row["created_at"],
        completed_at=row["completed_at"],
    )  # fmt: skip


def payment_not_found() -> ApiError:
    return ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No payment with this id.")


def packages(state: ControlPlaneState) -> PackageList:
    settings = state.settings.payments
    providers = sorted(state.payments.providers) if state.payments is not None else []
    return PackageList(
        [PackageOut(p.id, p.name, p.units, p.price_usd) for p in settings.packages], providers
    )


async def checkout(
    state: ControlPlaneState, principal: Principal, body: CheckoutBody
) -> PaymentOut:
    services = services_of(state)
    package = services.settings.package(body.package)
    if package is None:
        raise invalid("package", "Unknown package; see GET /api/v1/payments/packages")
    provider = services.provider(body.provider)
    if body.provider == "coinbase" and not await is_enabled(state, Flag.ENABLE_CRYPTO_PAYMENTS):
        raise ApiError(ErrorCode.FORBIDDEN, "Crypto payments are turned off on this platform.")
    async with state.db.acquire() as connection, connection.transaction():
        user = await connection.fetchrow(
            "SELECT email FROM users WHERE id = $1 FOR UPDATE", principal.user_id
        )
        if user is None:
            raise ApiError(ErrorCode.USER_NOT_FOUND)
        open_today = await connection.fetchval(
            """SELECT count(*) FROM payments WHERE user_id = $1 AND status = 'pending'
               AND created_at > now() - interval '1 day'""",
            principal.user_id,
        )
        if open_today >= MAX_OPEN_CHECKOUTS_PER_DAY:
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                "Too many unfinished checkouts today; complete or abandon one first.",
            )
        payment_id = await repository.insert_payment(
            connection, user_id=principal.user_id, package=package.id, amount=package.price_usd,
            units=package.units, method=body.provider,
        )  # fmt: skip
    request = CheckoutRequest(
        payment_id=payment_id, user_id=principal.user_id, email=user["email"],
        package_id=package.id, package_name=package.name, units=package.units,
        amount=package.price_usd, success_url=services.settings.success_url,
        cancel_url=services.settings.cancel_url,
    )  # fmt: skip
    try:
        created = await provider.create_checkout(request)
    except ProviderError:
        async with state.db.acquire() as connection:
            await repository.fail_checkout(connection, payment_id, "checkout not created")
        raise
    async with state.db.acquire() as connection:
        await repository.set_checkout(
            connection, payment_id, created.provider_payment_id, created.provider_ref,
            created.url,
        )  # fmt: skip
        row = await repository.payment(connection, payment_id)
    assert row is not None
    return payment_out(row)


async def history(
    state: ControlPlaneState, principal: Principal, query: HistoryQuery
) -> PaymentPage:
    before = None
    if query.cursor is not None:
        created_at, payment_id = decode_cursor(
            query.cursor, _HISTORY_CURSOR, (parse_datetime, parse_uuid)
        )
        before = (created_at, payment_id)
    async with state.db.acquire() as connection:
        rows = await repository.user_payments(
            connection, principal.user_id, before=before, limit=query.limit + 1
        )
    page, next_cursor = keyset_page(rows, query.limit, _HISTORY_CURSOR)
    return PaymentPage([payment_out(row) for row in page], next_cursor)


async def detail(state: ControlPlaneState, principal: Principal, payment_id: str) -> PaymentOut:
    if not is_uuid(payment_id):
        raise payment_not_found()
    async with state.db.acquire() as connection:
        row = await repository.payment(connection, payment_id)
    # Another developer's payment gets exactly this answer too: ids cannot be probed.
    if row is None or str(row["user_id"]) != principal.user_id:
        raise payment_not_found()
    return payment_out(row)


async def receive_webhook(
    state: ControlPlaneState, request: Request, provider_name: str
) -> WebhookAck:
    """Verify, store and apply one delivery. 200 when processed (or a duplicate), 400 when it
    fails verification (nothing stored), 409 when it must wait for its payment (the provider
    retries; the reconciler too)."""
    services = services_of(state)
    provider = services.provider(provider_name)
    body = await read_body(request.scope, request.receive, state.settings.max_body_bytes)
    event = provider.verify(body, dict(request.headers))
    applied = await ledger.process(state.db, state.redis, services.scripts, event)
    if applied.outcome == "deferred":
        raise ApiError(
            ErrorCode.CONFLICT,
            "The event concerns a payment that has not completed yet; it is applied on retry.",
            details={"event_id": event.event_id},
        )
    return WebhookAck(True, applied.outcome)
