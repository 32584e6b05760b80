"""The fake Stripe's app: shared plumbing (API keys, form bodies, idempotency, the request log,
signed events) and the route table the resource modules contribute to."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_payments.config import FakeConfig
from fake_payments.inspection import FakeProviderApp
from fake_payments.stripe import charges, checkout_sessions, connect, events, refunds
from fake_payments.stripe.store import StripeStore
from fake_payments.stripe.wire import StripeError, decode_form, json

ApiHandler = Callable[[Request, dict[str, Any]], Awaitable[dict[str, Any]]]
Scope = dict[str, Any]


class FakeStripe(FakeProviderApp):
    """The fake Stripe; `store` is there for tests to inspect and steer too."""

    def __init__(self, config: FakeConfig) -> None:
        super().__init__(config)
        self.store = StripeStore()
        self.serve([
            Route("/v1/events/{event_id}", self.api(self._get_event), methods=["GET"]),
            *checkout_sessions.routes(self),
            *charges.routes(self),
            *refunds.routes(self),
            *connect.routes(self),
        ])  # fmt: skip

    # --- plumbing every API endpoint goes through -------------------------------------------

    def api(self, handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            params = decode_form(raw) if request.method == "POST" else dict(request.query_params)
            self.recorder.record_request(
                request.method, request.url.path, dict(request.headers), params
            )
            try:
                self._authenticate(request)
                key = request.headers.get("idempotency-key")
                fingerprint = hashlib.sha256(request.url.path.encode() + b"?" + raw).digest()
                if key and request.method == "POST" and key in self.store.idempotent:
                    seen, status, body = self.store.idempotent[key]
                    if seen != fingerprint:
                        raise StripeError(400, "Keys for idempotent requests can only be used "
                                          "with the same parameters they were first used with.",
                                          type_="idempotency_error")  # fmt: skip
                    return Response(body, status_code=status, media_type="application/json",
                                    headers={"Idempotent-Replayed": "true"})  # fmt: skip
                response = json(200, await handler(request, params))
                if key and request.method == "POST":
                    self.store.idempotent[key] = (fingerprint, 200, bytes(response.body))
                return response
            except StripeError as error:
                return error.response()

        endpoint.__name__ = handler.__name__
        return endpoint

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip()
        expected = self.config.api_key
        if not token.startswith("sk_") or (expected is not None and token != expected):
            shown = token[:8] + "*" * max(0, len(token) - 12) + token[-4:] if token else ""
            raise StripeError(401, f"Invalid API Key provided: {shown}")

    async def emit(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Build an event from `obj` as it is now, keep it, sign it and deliver it."""
        event = events.build_event(event_type, self.store.snapshot(obj))
        self.store.put(event)
        return await self.deliver(event)

    async def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        body = events.encode(event)
        headers = events.delivery_headers(body, self.config.webhook_secrets)
        return await self.sender.send(event["id"], event["type"], body, headers)

    # --- inspection and control -------------------------------------------------------------

    async def resend(self, request: Request) -> Response:
        try:
            event = self.store.get("event", request.path_params["event_id"])
        except StripeError as error:
            return error.response()
        return JSONResponse(await self.deliver(event))

    async def _get_event(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get("event", request.path_params["event_id"])


def create_stripe_app(config: FakeConfig) -> FakeStripe:
    return FakeStripe(config)
