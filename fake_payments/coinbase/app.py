"""The fake Coinbase Commerce's app: API-key check, the request log, signed events."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_payments import inspection
from fake_payments.coinbase import events
from fake_payments.coinbase.charges import Charges, CoinbaseError
from fake_payments.config import FakeConfig
from fake_payments.recorder import Recorder, WebhookSender


class FakeCoinbase:
    """An ASGI app; `charges`, `events`, `recorder` and `config` are there for tests."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.charges: dict[str, dict[str, Any]] = {}  # by code
        self.events: dict[str, dict[str, Any]] = {}  # by event id
        self.recorder = Recorder()
        self.sender = WebhookSender(config, self.recorder)
        self._deliveries = itertools.count(1)
        routes = [
            *inspection.routes(self.recorder),
            Route("/_fake/events/{event_id}/resend", self._resend, methods=["POST"]),
            *Charges(self).routes(),
        ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.sender.aclose()

    def authenticate(self, request: Request) -> None:
        key = request.headers.get("x-cc-api-key", "")
        expected = self.config.api_key
        if not key or (expected is not None and key != expected):
            raise CoinbaseError(401, "authorization_error", "No such API key.")

    async def emit(self, event_type: str, charge: dict[str, Any]) -> dict[str, Any]:
        event = events.build_event(event_type, _copy(charge))
        self.events[event["id"]] = event
        return await self.deliver(event)

    async def deliver(self, event: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
        body = events.envelope(event, next(self._deliveries), attempt)
        secret = self.config.webhook_secrets[0] if self.config.webhook_secrets else None
        headers = events.delivery_headers(body, secret)
        return await self.sender.send(event["id"], event["type"], body, headers)

    async def _resend(self, request: Request) -> Response:
        event = self.events.get(request.path_params["event_id"])
        if event is None:
            return CoinbaseError(404, "not_found", "Not found").response()
        return JSONResponse(await self.deliver(event, attempt=2))


def _copy(charge: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(charge)


def create_coinbase_app(config: FakeConfig) -> FakeCoinbase:
    return FakeCoinbase(config)
