"""Webhooks of developers and creators, each on their own pages: register an endpoint (its
signing secret shown once, like a new key), send a test event, re-enable one the worker
disabled, delete, and the delivery log with every attempt (status, response code, latency,
error). All through the webhooks service, which answers another account's endpoint exactly
like a missing one (404)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.dashboard.forms import Errors, blank_to_none, convert, form_errors
from control_plane.dashboard.pages import Page, PageContext
from control_plane.webhooks import events
from control_plane.webhooks import service as webhooks
from control_plane.webhooks.schemas import CreatedWebhook, CreateWebhook, DeliveryQuery


def page_id(raw: str) -> str:
    return raw.lower()


EVENT_NAMES = {
    UserType.DEVELOPER: {
        events.QUOTA_LOW: "Quota low (remaining quota fell to the threshold)",
        events.QUOTA_EXHAUSTED: "Quota exhausted",
        events.PAYMENT_SUCCEEDED: "Payment succeeded",
        events.PAYMENT_REFUNDED: "Payment refunded",
        events.AGENT_PUBLISHED: "An agent you called was published",
        events.AGENT_UPDATED: "An agent you called has a new version",
        events.KEY_REVOKED: "An API key was revoked",
    },
    UserType.CREATOR: {
        events.AGENT_PUBLISHED: "One of your agents was published",
        events.AGENT_UPDATED: "One of your agents has a new version",
    },
}


def _base(ctx: PageContext) -> str:
    return f"/{ctx.user.user_type.value}/webhooks"


async def _list_page(
    ctx: PageContext, *, created: CreatedWebhook | None = None, errors: Errors | None = None,
    values: dict[str, Any] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    listing = await webhooks.list_webhooks(ctx.state, ctx.user)
    names = EVENT_NAMES[ctx.user.user_type]
    return ctx.render(
        "webhooks/list.html", webhooks=listing.webhooks, created=created, base=_base(ctx),
        errors=errors or {}, values=values or {"events": [next(iter(names))]},
        event_names=names, max_webhooks=ctx.state.settings.webhooks.max_per_user,
        status=status,
    )  # fmt: skip


async def list_page(ctx: PageContext) -> Response:
    return await _list_page(ctx)


async def create(ctx: PageContext) -> Response:
    values: dict[str, Any] = {
        "url": ctx.form["url"].strip(), "events": ctx.form.getlist("events"),
        "description": ctx.form["description"].strip(),
        "quota_low_threshold": ctx.form["quota_low_threshold"].strip(),
    }  # fmt: skip
    if not values["events"]:
        return await _list_page(ctx, errors={"events": "Choose at least one event."},
                                values=values, status=400)  # fmt: skip
    try:
        body: CreateWebhook = convert(blank_to_none(values), CreateWebhook)
        created = await webhooks.create(ctx.state, ctx.user, body)
    except ApiError as error:
        errors = form_errors(error, ErrorCode.VALIDATION_FAILED, ErrorCode.CONFLICT)
        return await _list_page(ctx, errors=errors, values=values, status=error.status)
    # Rendered, not redirected: this response is the only place the secret ever appears.
    return await _list_page(ctx, created=created, status=201)


async def deliveries(ctx: PageContext) -> Response:
    webhook_id = ctx.path["webhook_id"]
    cursor = ctx.query.get("cursor") or None
    query: DeliveryQuery = convert({"limit": 25, **({"cursor": cursor} if cursor else {})},
                                   DeliveryQuery)  # fmt: skip
    page = await webhooks.deliveries(ctx.state, ctx.user, webhook_id, query)
    listing = await webhooks.list_webhooks(ctx.state, ctx.user)
    webhook = next((item for item in listing.webhooks if item.id == page_id(webhook_id)), None)
    if webhook is None:  # deleted meanwhile
        raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No webhook with this id.")
    return ctx.render("webhooks/log.html", webhook=webhook, page=page, base=_base(ctx))


async def send_test(ctx: PageContext) -> Response:
    webhook_id = ctx.path["webhook_id"]
    await webhooks.send_test(ctx.state, ctx.user, webhook_id)
    return ctx.redirect(f"{_base(ctx)}/{webhook_id}",
                        notice="Test event queued: it appears below once it is sent.")  # fmt: skip


async def enable(ctx: PageContext) -> Response:
    webhook = await webhooks.enable(ctx.state, ctx.user, ctx.path["webhook_id"])
    return ctx.redirect(f"{_base(ctx)}/{webhook.id}",
                        notice="Re-enabled: waiting deliveries go out again.")  # fmt: skip


async def delete(ctx: PageContext) -> Response:
    await webhooks.delete(ctx.state, ctx.user, ctx.path["webhook_id"])
    return ctx.redirect(_base(ctx), notice="Webhook deleted, with its delivery log.")


def _pages(kind: UserType) -> list[Page]:
    base = f"/{kind.value}/webhooks"
    one, users = f"{base}/{{webhook_id}}", frozenset({kind})
    return [
        Page("GET", base, list_page, users=users),
        Page("POST", base, create, users=users),
        Page("GET", one, deliveries, users=users),
        Page("POST", f"{one}/test", send_test, users=users),
        Page("POST", f"{one}/enable", enable, users=users),
        Page("POST", f"{one}/delete", delete, users=users),
    ]


PAGES = [*_pages(UserType.DEVELOPER), *_pages(UserType.CREATOR)]
