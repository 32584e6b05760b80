"""Minimal ASGI plumbing: types, body reading, response sending, disconnect-aware sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
JSON_STREAM_HEADERS: Headers = [JSON_TYPE, (b"cache-control", b"no-cache")]


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_json(
    send: Send, status: int, body: bytes, extra_headers: Headers | None = None
) -> None:
    headers = [JSON_TYPE, (b"content-length", b"%d" % len(body))]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class Client:
    """Sleeps that end early when the client goes away (so a stalled or slow answer never
    outlives its connection and never holds up server shutdown)."""

    __slots__ = ("_receive", "_watcher")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._watcher: asyncio.Future[None] | None = None

    async def sleep(self, seconds: float) -> bool:
        """Sleep; return False (at once) if the client disconnected meanwhile."""
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(_wait_disconnect(self._receive))
        done, _ = await asyncio.wait((self._watcher,), timeout=seconds)
        return not done

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
