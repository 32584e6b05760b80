"""Webhook routes (the seed's /api/v1/webhooks, plus test, re-enable and the delivery log):
path → handler. For developers and creators, each on their own endpoints."""

from __future__ import annotations

from starlette.responses import Response

from control_plane.api import Context, RouteGroup, json_response
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
_OWNER = RouteGroup(PREFIX, frozenset({UserType.DEVELOPER, UserType.CREATOR}), "webhooks")
ONE = "/{webhook_id}"
ROUTES = [
    _OWNER.route("GET", "", list_webhooks, "The caller's webhook endpoints",
                 response=WebhookList),
    _OWNER.route("POST", "", create_webhook,
                 "Register an endpoint (public http(s) URL); its signing secret is in this "
                 "response only", body=CreateWebhook, response=CreatedWebhook, status=201),
    _OWNER.route("DELETE", ONE, delete_webhook, "Delete an endpoint and its delivery log",
                 status=204),
    _OWNER.route("POST", f"{ONE}/test", test_webhook, "Send a webhook.test event to this endpoint",
                 response=TestEvent, status=202),
    _OWNER.route("POST", f"{ONE}/enable", enable_webhook,
                 "Re-enable an endpoint disabled after failing deliveries", response=WebhookOut),
    _OWNER.route("GET", f"{ONE}/deliveries", webhook_deliveries,
                 "The endpoint's deliveries, newest first, with every attempt",
                 query=DeliveryQuery, response=DeliveryPage),
]  # fmt: skip
