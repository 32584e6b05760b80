"""Developer console: overview (quota, trials, tier), API keys (created and shown once,
revoked with confirmation), usage (chart and tables per agent and key), billing, webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.dashboard.charts import Point, bar_chart
from control_plane.dashboard.forms import convert, field_errors
from control_plane.dashboard.pages import Page, PageContext
from control_plane.developers import service as developers
from control_plane.developers.schemas import (
    CreatedApiKey,
    CreateKeyRequest,
    KeyListQuery,
    UsageQuery,
)
from control_plane.feature_flags.service import Flag, is_enabled
from control_plane.payments import service as payments
from control_plane.payments.schemas import CheckoutBody, HistoryQuery

DEVELOPERS = frozenset({UserType.DEVELOPER})
USAGE_RANGES = (7, 30, 90)


async def overview(ctx: PageContext) -> Response:
    profile = await developers.profile(ctx.state, ctx.user)
    trials = await developers.trials(ctx.state, ctx.user)
    usage = await developers.usage(ctx.state, ctx.user, UsageQuery())
    return ctx.render(
        "developer/overview.html", profile=profile, trials=trials, totals=usage.totals,
        rate_limits={"free": ctx.dash.settings.rate_limit_free,
                     "paid": ctx.dash.settings.rate_limit_paid},
    )  # fmt: skip


async def _keys_page(
    ctx: PageContext, *, created: CreatedApiKey | None = None,
    errors: dict[str, str] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    own = await developers.list_keys(ctx.state, ctx.user, KeyListQuery(scope="api"))
    session = await developers.list_keys(
        ctx.state, ctx.user, KeyListQuery(scope="playground", include_revoked=False)
    )
    profile = await developers.profile(ctx.state, ctx.user)
    response = ctx.render(
        "developer/keys.html", keys=own.keys, session_keys=session.keys, created=created,
        errors=errors or {}, profile=profile, status=status,
    )  # fmt: skip
    return response


async def keys(ctx: PageContext) -> Response:
    return await _keys_page(ctx)


async def create_key(ctx: PageContext) -> Response:
    try:
        request: CreateKeyRequest = convert({"name": ctx.form["name"]}, CreateKeyRequest)
        created = await developers.create_key(ctx.state, ctx.user, request)
    except ApiError as error:
        if error.code not in (ErrorCode.VALIDATION_FAILED, ErrorCode.CONFLICT):
            raise
        return await _keys_page(ctx, errors=field_errors(error), status=error.status)
    # Rendered, not redirected: this response is the only place the plaintext ever appears.
    return await _keys_page(ctx, created=created, status=201)


async def revoke_key(ctx: PageContext) -> Response:
    await developers.revoke_key(ctx.state, ctx.user, ctx.path["key_id"])
    return ctx.redirect(
        "/developer/keys", notice="Key revoked: the gateway refuses it from now on."
    )


async def usage(ctx: PageContext) -> Response:
    raw = ctx.query.get("days", "30")
    days = int(raw) if raw.isdigit() and int(raw) in USAGE_RANGES else 30
    end = datetime.now(UTC)
    report = await developers.usage(
        ctx.state, ctx.user, UsageQuery(from_=end - timedelta(days=days), to=end)
    )
    calls_chart = bar_chart(
        "calls-per-day", f"Calls per day, last {days} days",
        [Point(day.date.isoformat(), day.calls) for day in report.by_day], unit=" calls",
    )  # fmt: skip
    units_chart = bar_chart(
        "units-per-day", f"Quota units used per day, last {days} days",
        [Point(day.date.isoformat(), day.units) for day in report.by_day], unit=" units",
        alternate=True,
    )  # fmt: skip
    return ctx.render(
        "developer/usage.html", report=report, days=days, ranges=USAGE_RANGES,
        calls_chart=calls_chart, units_chart=units_chart,
    )  # fmt: skip


async def checkout_providers(ctx: PageContext) -> list[str]:
    """The payment providers a developer can pay with here, right now."""
    configured = payments.packages(ctx.state).providers
    crypto = "coinbase" in configured and await is_enabled(ctx.state, Flag.ENABLE_CRYPTO_PAYMENTS)
    return [name for name in configured if name != "coinbase" or crypto]


async def billing(ctx: PageContext, *, errors: dict[str, str] | None = None,
                  status: int = 200) -> Response:  # fmt: skip
    profile = await developers.profile(ctx.state, ctx.user)
    cursor = ctx.query.get("cursor") or None
    history = await payments.history(
        ctx.state, ctx.user,
        convert({"limit": 20, **({"cursor": cursor} if cursor else {})}, HistoryQuery),
    )  # fmt: skip
    return ctx.render(
        "developer/billing.html", profile=profile, packages=payments.packages(ctx.state).packages,
        providers=await checkout_providers(ctx), payments=history.items,
        next_cursor=history.next_cursor, errors=errors or {}, status=status,
    )  # fmt: skip


async def billing_page(ctx: PageContext) -> Response:
    return await billing(ctx)


async def checkout(ctx: PageContext) -> Response:
    """Start a checkout, then hand the browser to the provider's hosted page."""
    try:
        body: CheckoutBody = convert(
            {"package": ctx.form["package"], "provider": ctx.form["provider"]}, CheckoutBody
        )
        payment = await payments.checkout(ctx.state, ctx.user, body)
    except ApiError as error:
        if error.code not in (ErrorCode.VALIDATION_FAILED, ErrorCode.FORBIDDEN,
                              ErrorCode.RATE_LIMITED, ErrorCode.UPSTREAM_UNAVAILABLE):  # fmt: skip
            raise
        return await billing(ctx, errors=field_errors(error), status=error.status)
    # Via our own page: a form may only post to this site (CSP form-action), so the hop to
    # the provider is a plain navigation from there.
    return ctx.redirect(f"/developer/billing/payments/{payment.id}")


async def payment_page(ctx: PageContext) -> Response:
    payment = await payments.detail(ctx.state, ctx.user, ctx.path["payment_id"])
    return ctx.render("developer/payment.html", payment=payment)


# Where the provider sends the payer back (PAYMENT_SUCCESS_URL / PAYMENT_CANCEL_URL).
async def checkout_succeeded(ctx: PageContext) -> Response:
    notice = "Thank you! Your quota is credited as soon as the provider confirms the payment."
    return ctx.redirect("/developer/billing", notice=notice)


async def checkout_cancelled(ctx: PageContext) -> Response:
    return ctx.redirect("/developer/billing", notice="Checkout cancelled; nothing was charged.")


PAGES = [
    Page("GET", "/developer", overview, users=DEVELOPERS),
    Page("GET", "/developer/keys", keys, users=DEVELOPERS),
    Page("POST", "/developer/keys", create_key, users=DEVELOPERS),
    Page("POST", "/developer/keys/{key_id}/revoke", revoke_key, users=DEVELOPERS),
    Page("GET", "/developer/usage", usage, users=DEVELOPERS),
    Page("GET", "/developer/billing", billing_page, users=DEVELOPERS),
    Page("POST", "/developer/billing/checkout", checkout, users=DEVELOPERS),
    Page("GET", "/developer/billing/payments/{payment_id}", payment_page, users=DEVELOPERS),
    Page("GET", "/billing/success", checkout_succeeded, users=DEVELOPERS),
    Page("GET", "/billing/cancel", checkout_cancelled, users=DEVELOPERS),
]
