"""A webhook receiver that keeps what the fakes send it, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support import serve


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.app = Starlette(routes=[
            Route("/hook", self._hook, methods=["POST"]),
            Route("/healthz", self._health, methods=["GET"]),
        ])  # fmt: skip

    async def _hook(self, request: Request) -> Response:
        self.received.append({"body": await request.body(), "headers": dict(request.headers)})
        return JSONResponse({"ok": True})

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with serve(hooks.app) as url:
        yield hooks, f"{url}/hook"
