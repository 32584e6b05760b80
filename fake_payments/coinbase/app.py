"""The fake Coinbase Commerce's app: API-key check, the request log, signed events."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_payments.coinbase import events
from fake_payments.coinbase.charges import Charges, CoinbaseError
from fake_payments.config import FakeConfig
from fake_payments.inspection import FakeProviderApp


class FakeCoinbase(FakeProviderApp):
    """The fake Coinbase Commerce; `charges` and `events` are there for tests too."""

    def __init__(self, config: FakeConfig) -> None:
        super().__init__(config)
        self.charges: dict[str, dict[str, Any]] = {}  # by code
        self.events: dict[str, dict[str, Any]] = {}  # by event id
        self._deliveries = itertools.count(1)
        self.serve(Charges(self).routes())

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

    async def resend(self, request: Request) -> Response:
        event = self.events.get(request.path_params["event_id"])
        if event is None:
            return CoinbaseError(404, "not_found", "Not found").response()
        return JSONResponse(await self.deliver(event, attempt=2))


def _copy(charge: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(charge)


def create_coinbase_app(config: FakeConfig) -> FakeCoinbase:
    return FakeCoinbase(config)
