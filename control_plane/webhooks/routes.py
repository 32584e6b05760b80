"""Webhook routes (the seed's /api/v1/webhooks, plus test, re-enable and the delivery log):
path → handler. For developers and creators, each on their own endpoints."""

from __future__ import annotations

from starlette.responses import Response

from control_plane.api import ApiRoute, Context, json_response
from control_plane.auth.principal import UserType
from control_plane.webhooks import service
from control_plane.webhooks.schemas import (
    CreatedWebhook,
    CreateWebhook,
    DeliveryPage,
    DeliveryQuery,
    TestEvent,
    WebhookList,
    WebhookOut,
)


async def list_webhooks(context: Context) -> WebhookList:
    return await service.list_webhooks(context.state, context.user)


async def create_webhook(context: Context, body: CreateWebhook) -> Response:
    created = await service.create(context.state, context.user, body)
    return json_response(created, 201, headers={"Cache-Control": "no-store"})


async def delete_webhook(context: Context) -> None:
    await service.delete(context.state, context.user, context.path["webhook_id"])


async def enable_webhook(context: Context) -> WebhookOut:
    return await service.enable(context.state, context.user, context.path["webhook_id"])


async def test_webhook(context: Context) -> Response:
    sent = await service.send_test(context.state, context.user, context.path["webhook_id"])
    return json_response(sent, 202)


async def webhook_deliveries(context: Context, query: DeliveryQuery) -> DeliveryPage:
    return await service.deliveries(context.state, context.user, context.path["webhook_id"], query)


PREFIX = "/api/v1/webhooks"
ONE = f"{PREFIX}/{{webhook_id}}"
_OWNERS = frozenset({UserType.DEVELOPER, UserType.CREATOR})
_TAGS = ("webhooks",)
ROUTES = [
    ApiRoute("GET", PREFIX, list_webhooks, "The caller's webhook endpoints", response=WebhookList,
             user_types=_OWNERS, tags=_TAGS),
    ApiRoute("POST", PREFIX, create_webhook,
             "Register an endpoint (public http(s) URL); its signing secret is in this response "
             "only", body=CreateWebhook, response=CreatedWebhook, status=201, user_types=_OWNERS,
             tags=_TAGS),
    ApiRoute("DELETE", ONE, delete_webhook, "Delete an endpoint and its delivery log",
             status=204, user_types=_OWNERS, tags=_TAGS),
    ApiRoute("POST", f"{ONE}/test", test_webhook, "Send a webhook.test event to this endpoint",
             response=TestEvent, status=202, user_types=_OWNERS, tags=_TAGS),
    ApiRoute("POST", f"{ONE}/enable", enable_webhook,
             "Re-enable an endpoint disabled after failing deliveries", response=WebhookOut,
             user_types=_OWNERS, tags=_TAGS),
    ApiRoute("GET", f"{ONE}/deliveries", webhook_deliveries,
             "The endpoint's deliveries, newest first, with every attempt", query=DeliveryQuery,
             response=DeliveryPage, user_types=_OWNERS, tags=_TAGS),
]  # fmt: skip
