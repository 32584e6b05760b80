"""A webhook receiver for the tests: a real HTTP server on loopback that verifies every
delivery's signature with the endpoint's secret, records it, and answers from a script."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from crypto.errors import SignatureError
from crypto.webhook_signing import verify
from tests.support import serve


@dataclass
class Received:
    path: str
    event_id: str
    event_type: str
    body: dict[str, Any]
    raw: bytes
    signature_ok: bool
    host: str
    at: float


@dataclass
class Receiver:
    url: str = ""
    secret: str | None = None  # set once the webhook is registered
    statuses: list[int] = field(default_factory=list)  # answers, in order; then 200
    redirect_to: str | None = None
    hold_s: float = 0.0  # how long the next answer takes
    received: list[Received] = field(default_factory=list)

    def events(self, event_type: str | None = None) -> list[Received]:
        return [r for r in self.received if event_type is None or r.event_type == event_type]


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    async def hook(request: Request) -> Response:
        raw = await request.body()
        ok = False
        if receiver.secret is not None:
            try:
                verify(receiver.secret, raw, request.headers.get("agentlink-signature", ""),
                       now=int(time.time()))  # fmt: skip
                ok = True
            except SignatureError:
                ok = False
        body = orjson.loads(raw) if raw else {}
        receiver.received.append(
            Received(
                request.url.path,
                request.headers.get("agentlink-event-id", ""),
                request.headers.get("agentlink-event-type", ""),
                body,
                raw,
                ok,
                request.headers.get("host", ""),
                time.monotonic(),
            )
        )
        if receiver.hold_s:
            hold, receiver.hold_s = receiver.hold_s, 0.0
            await asyncio.sleep(hold)
        if receiver.redirect_to and request.url.path != "/moved":
            return Response(status_code=307, headers={"location": receiver.redirect_to})
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        return PlainTextResponse("ok" if status < 300 else "no", status_code=status)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/healthz", health), Route("/{path:path}", hook, methods=["POST"])]
    )
    with serve(app) as base:
        receiver.url = base
        yield receiver
