"""What both fakes share: health, what they were sent and sent back, the return page, and the
app around them (`FakeProviderApp`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from fake_payments.config import FakeConfig
from fake_payments.pages import return_page
from fake_payments.recorder import Recorder, WebhookSender


def routes_of(recorder: Recorder) -> list[Route]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def requests(request: Request) -> Response:
        """`GET`: the API requests received, oldest first (keys masked); `DELETE`: forget."""
        if request.method == "DELETE":
            recorder.clear()
            return Response(status_code=204)
        return JSONResponse(list(recorder.requests))

    async def deliveries(request: Request) -> Response:
        """Every webhook delivery attempt and the answer it got."""
        return JSONResponse(list(recorder.deliveries))

    async def landing(request: Request) -> Response:
        return HTMLResponse(return_page(request.path_params["outcome"]))

    return [
        Route("/health", health, methods=["GET"]),
        Route("/_fake/requests", requests, methods=["GET", "DELETE"]),
        Route("/_fake/deliveries", deliveries, methods=["GET"]),
        Route("/_fake/return/{outcome}", landing, methods=["GET"]),
    ]


class FakeProviderApp:
    """An ASGI app: the shared routes, `POST /_fake/events/{event_id}/resend` and the
    provider's own; `recorder` and `config` are there for tests. The webhook sender is closed
    at shutdown."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.recorder = Recorder()
        self.sender = WebhookSender(config, self.recorder)

    def serve(self, provider_routes: Sequence[BaseRoute]) -> None:
        routes = [
            *routes_of(self.recorder),
            Route("/_fake/events/{event_id}/resend", self.resend, methods=["POST"]),
            *provider_routes,
        ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)

    async def resend(self, request: Request) -> Response:
        """Deliver the event again (a provider's retry)."""
        raise NotImplementedError

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.sender.aclose()
