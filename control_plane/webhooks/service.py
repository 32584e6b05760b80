"""Developers' (and creators') webhook endpoints: register, list, delete, re-enable, send a
test event, read the delivery log. Only the owner sees or touches an endpoint; another
account's id is answered exactly like a missing one."""

from __future__ import annotations

from typing import Any

import asyncpg

from common.errors import ApiError, ErrorCode
from common.validation import invalid
from control_plane.auth.principal import Principal
from control_plane.marketplace.pagination import (
    is_uuid,
    newest_first_after,
    newest_first_cursor,
)
from control_plane.rows import from_row
from control_plane.state import ControlPlaneState
from control_plane.webhooks import events, outbox, ssrf
from control_plane.webhooks.delivery import secret_associated_id
from control_plane.webhooks.schemas import (
    AttemptOut,
    CreatedWebhook,
    CreateWebhook,
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    TestEvent,
    WebhookList,
    WebhookOut,
)
from crypto.webhook_signing import generate_webhook_secret

_COLUMNS = """id, url, events, description, quota_low_threshold, active, disabled_reason,
    disabled_at, consecutive_failures, created_at"""


def _not_found() -> ApiError:
    return ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No webhook with this id.")


def _out(row: asyncpg.Record) -> WebhookOut:
    return from_row(WebhookOut, row, events=list(row["events"]))


async def create(
    state: ControlPlaneState, principal: Principal, request: CreateWebhook
) -> CreatedWebhook:
    settings = state.settings.webhooks
    url = request.url.strip()
    try:
        await ssrf.resolve(url, allow_private=settings.allow_private_addresses)
    except ssrf.UnsafeDestination as error:
        message = f"Webhooks are delivered to public http(s) URLs only: {error}."
        raise invalid("url", message) from None
    unknown = sorted(set(request.events) - events.EVENT_TYPES)
    if unknown:
        raise invalid(
            "events",
            f"Unknown events {unknown}; known: {', '.join(sorted(events.EVENT_TYPES))}.",
        )
    names = sorted(set(request.events))
    threshold = request.quota_low_threshold
    secret = generate_webhook_secret()
    async with state.db.acquire() as connection, connection.transaction():
        await connection.execute(
            "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", principal.user_id
        )  # one registration at a time per account, so the cap holds
        count = await connection.fetchval(
            "SELECT count(*) FROM webhooks WHERE user_id = $1", principal.user_id
        )
        if count >= settings.max_per_user:
            raise ApiError(
                ErrorCode.CONFLICT,
                f"An account may have {settings.max_per_user} webhooks; delete one first.",
            )
        webhook_id = await connection.fetchval("SELECT gen_random_uuid()")
        sealed = state.keyring.encrypt(
            secret.encode(), agent_id=secret_associated_id(str(webhook_id)), version=1
        )
        row = await connection.fetchrow(
            f"""INSERT INTO webhooks (id, user_id, url, events, secret_encrypted, description,
                                      quota_low_threshold)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",  # noqa: S608
            webhook_id,
            principal.user_id,
            url,
            names,
            sealed,
            request.description,
            settings.quota_low_units if threshold is None else threshold,
        )
    assert row is not None
    return from_row(CreatedWebhook, row, events=list(row["events"]), secret=secret)


async def list_webhooks(state: ControlPlaneState, principal: Principal) -> WebhookList:
    rows = await state.db.fetch(
        f"SELECT {_COLUMNS} FROM webhooks WHERE user_id = $1"  # noqa: S608 - constant columns
        " ORDER BY created_at DESC, id",
        principal.user_id,
    )
    return WebhookList([_out(row) for row in rows])


async def _owned(state: ControlPlaneState, principal: Principal, webhook_id: str) -> str:
    if not is_uuid(webhook_id):
        raise _not_found()
    found = await state.db.fetchval(
        "SELECT id FROM webhooks WHERE id = $1 AND user_id = $2", webhook_id, principal.user_id
    )
    if found is None:
        raise _not_found()
    return str(found)


async def delete(state: ControlPlaneState, principal: Principal, webhook_id: str) -> None:
    if not is_uuid(webhook_id):
        raise _not_found()
    status = await state.db.execute(
        "DELETE FROM webhooks WHERE id = $1 AND user_id = $2", webhook_id, principal.user_id
    )
    if status == "DELETE 0":
        raise _not_found()


async def enable(state: ControlPlaneState, principal: Principal, webhook_id: str) -> WebhookOut:
    """Re-enable an endpoint the worker disabled; its waiting deliveries go out again."""
    await _owned(state, principal, webhook_id)
    row = await state.db.fetchrow(
        f"""UPDATE webhooks SET active = true, consecutive_failures = 0, disabled_reason = NULL,
                   disabled_at = NULL
            WHERE id = $1 RETURNING {_COLUMNS}""",  # noqa: S608 - constant columns
        webhook_id,
    )
    assert row is not None
    return _out(row)


async def send_test(state: ControlPlaneState, principal: Principal, webhook_id: str) -> TestEvent:
    """A `webhook.test` event to this endpoint only, through the same outbox and worker."""
    await _owned(state, principal, webhook_id)
    event_id = outbox.new_event_id()
    row = await state.db.fetchrow(
        """INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)
           SELECT id, $2, $3, $4 FROM webhooks WHERE id = $1 AND active
           RETURNING id""",
        webhook_id,
        event_id,
        events.WEBHOOK_TEST,
        {"webhook_id": webhook_id, "message": "A test event from AgentLink."},
    )
    if row is None:
        raise ApiError(ErrorCode.CONFLICT, "This webhook is disabled; re-enable it before testing.")
    return TestEvent(event_id, str(row["id"]))


async def deliveries(
    state: ControlPlaneState, principal: Principal, webhook_id: str, query: DeliveryQuery
) -> DeliveryPage:
    await _owned(state, principal, webhook_id)
    after, after_params = newest_first_after(query.cursor, "deliveries")
    params: list[Any] = [webhook_id, query.limit + 1, *after_params]
    rows = await state.db.fetch(
        f"""SELECT id, event_id, event_type, status, attempts, last_status_code, last_error,
                   last_latency_ms, created_at, last_attempt_at, delivered_at,
                   CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at
            FROM webhook_deliveries WHERE webhook_id = $1 {after}
            ORDER BY created_at DESC, id LIMIT $2""",  # noqa: S608 - constant clauses
        *params,
    )
    page = rows[: query.limit]
    attempts = await state.db.fetch(
        """SELECT delivery_id, attempt, status_code, latency_ms, error, attempted_at
           FROM webhook_delivery_attempts WHERE delivery_id = ANY($1::uuid[])
           ORDER BY delivery_id, attempt, id""",
        [row["id"] for row in page],
    )
    log: dict[str, list[AttemptOut]] = {}
    for attempt in attempts:
        log.setdefault(str(attempt["delivery_id"]), []).append(
            AttemptOut(
                attempt["attempt"],
                attempt["status_code"],
                attempt["latency_ms"],
                attempt["error"],
                attempt["attempted_at"],
            )
        )
    items = [from_row(DeliveryOut, row, attempt_log=log.get(str(row["id"]), [])) for row in page]
    return DeliveryPage(items, newest_first_cursor("deliveries", rows, query.limit))
