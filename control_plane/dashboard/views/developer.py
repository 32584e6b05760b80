"""Developer console: overview (quota, trials, tier), API keys (created and shown once,
revoked with confirmation, each with its controls page: spend cap, rate limit, expiry,
allowed agents, rotation), usage (chart and tables per agent and key), billing, webhooks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.dashboard.charts import Point, bar_chart
from control_plane.dashboard.forms import convert, form_errors
from control_plane.dashboard.pages import Page, PageContext
from control_plane.developers import key_controls
from control_plane.developers import service as developers
from control_plane.developers.schemas import (
    ApiKeyOut,
    CreatedApiKey,
    CreateKeyRequest,
    KeyControlsPatch,
    KeyListQuery,
    RotateKeyRequest,
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
        errors = form_errors(error, ErrorCode.VALIDATION_FAILED, ErrorCode.CONFLICT)
        return await _keys_page(ctx, errors=errors, status=error.status)
    # Rendered, not redirected: this response is the only place the plaintext ever appears.
    return await _keys_page(ctx, created=created, status=201)


async def revoke_key(ctx: PageContext) -> Response:
    await developers.revoke_key(ctx.state, ctx.user, ctx.path["key_id"])
    return ctx.redirect(
        "/developer/keys", notice="Key revoked: the gateway refuses it from now on."
    )


# -- one key's controls ----------------------------------------------------------------------

CAP_PERIODS = ("day", "month", "total")
# The API's field names (their last part) -> this form's; an agent id's error names its list.
_CONTROL_FIELDS = {"units": "cap_units", "period": "cap_period", "spend_cap": "cap_units"}
_ITEM = re.compile(r"\[\d+\]$")
_LOCAL_MINUTES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
_HAS_ZONE = re.compile(r"(Z|[+-]\d\d:\d\d)$")
GRACE_CHOICES = ((0, "stops now"), (3600, "1 hour"), (86_400, "1 day"), (604_800, "7 days"))


async def _own_key(ctx: PageContext) -> ApiKeyOut:
    """The caller's key named in the path (a playground key or another's is not found)."""
    listing = await developers.list_keys(ctx.state, ctx.user, KeyListQuery(scope="api"))
    for key in listing.keys:
        if key.id == ctx.path["key_id"]:
            return key
    raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No such API key.")


def _control_values(key: ApiKeyOut) -> dict[str, Any]:
    expires = key.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if key.expires_at else ""
    return {
        "name": key.name or "",
        "cap_units": key.spend_cap.units if key.spend_cap else "",
        "cap_period": key.spend_cap.period if key.spend_cap else "",
        "rate_limit": key.rate_limit or "",
        "expires_at": expires,
        "allowed_agents": "\n".join(key.allowed_agents or ()),
    }


def _utc_moment(text: str) -> str:
    """A datetime-local value (no zone, maybe no seconds) read as UTC, as the page says."""
    if _LOCAL_MINUTES.fullmatch(text):
        text += ":00"
    return text if _HAS_ZONE.search(text) else text + "+00:00"


def _controls_patch(form: Any) -> dict[str, Any]:
    """The form as a KeyControlsPatch body: a blank field clears its control."""
    units, period = form["cap_units"].strip(), form["cap_period"]
    expires = form["expires_at"].strip()
    agents = [line.strip() for line in form["allowed_agents"].splitlines() if line.strip()]
    return {
        "name": form["name"],
        "spend_cap": {"units": units, "period": period} if units or period else None,
        "rate_limit": form["rate_limit"].strip() or None,
        "expires_at": _utc_moment(expires) if expires else None,
        "allowed_agents": agents or None,
    }


async def _key_page(
    ctx: PageContext, key: ApiKeyOut, *, values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    return ctx.render(
        "developer/key.html", key=key, values=values or _control_values(key),
        errors=errors or {}, periods=CAP_PERIODS, graces=GRACE_CHOICES, status=status,
    )  # fmt: skip


async def key_page(ctx: PageContext) -> Response:
    return await _key_page(ctx, await _own_key(ctx))


async def update_key(ctx: PageContext) -> Response:
    key = await _own_key(ctx)
    try:
        patch: KeyControlsPatch = convert(_controls_patch(ctx.form), KeyControlsPatch)
        await key_controls.update_controls(ctx.state, ctx.user, key.id, patch)
    except ApiError as error:
        found = form_errors(
            error, ErrorCode.VALIDATION_FAILED, ErrorCode.CONFLICT, rename=_CONTROL_FIELDS
        )
        errors = {_ITEM.sub("", name): message for name, message in found.items()}
        return await _key_page(ctx, key, values=ctx.form.as_dict(), errors=errors,
                               status=error.status)  # fmt: skip
    return ctx.redirect(f"/developer/keys/{key.id}", notice="Saved: the gateway applies it now.")


async def rotate_key(ctx: PageContext) -> Response:
    key = await _own_key(ctx)
    try:
        request: RotateKeyRequest = convert({"grace_seconds": ctx.form["grace_seconds"]},
                                            RotateKeyRequest)  # fmt: skip
        created = await key_controls.rotate(ctx.state, ctx.user, key.id, request)
    except ApiError as error:
        errors = form_errors(error, ErrorCode.VALIDATION_FAILED, ErrorCode.CONFLICT)
        return await _key_page(ctx, key, errors=errors, status=error.status)
    # Rendered, not redirected: this response is the only place the plaintext ever appears.
    return await _keys_page(ctx, created=created, status=201)


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
        errors = form_errors(error, ErrorCode.VALIDATION_FAILED, ErrorCode.FORBIDDEN,
                             ErrorCode.RATE_LIMITED, ErrorCode.UPSTREAM_UNAVAILABLE)  # fmt: skip
        return await billing(ctx, errors=errors, status=error.status)
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
    Page("GET", "/developer/keys/{key_id}", key_page, users=DEVELOPERS),
    Page("POST", "/developer/keys/{key_id}", update_key, users=DEVELOPERS),
    Page("POST", "/developer/keys/{key_id}/rotate", rotate_key, users=DEVELOPERS),
    Page("GET", "/developer/usage", usage, users=DEVELOPERS),
    Page("GET", "/developer/billing", billing_page, users=DEVELOPERS),
    Page("POST", "/developer/billing/checkout", checkout, users=DEVELOPERS),
    Page("GET", "/developer/billing/payments/{payment_id}", payment_page, users=DEVELOPERS),
    Page("GET", "/billing/success", checkout_succeeded, users=DEVELOPERS),
    Page("GET", "/billing/cancel", checkout_cancelled, users=DEVELOPERS),
]
