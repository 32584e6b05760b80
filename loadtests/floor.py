"""The floor: the gateway's server stack with none of its logic, for `./dev load` to measure
the gateway against.

    FLOOR_UPSTREAM_URL=http://127.0.0.1:PORT/v1/chat/completions \\
        uvicorn --factory loadtests.floor:create_app --loop uvloop --http httptools

A pure ASGI app on uvicorn (uvloop + httptools) holding one aiohttp session made like the
gateway's (gateway/providers/http_client.py): every POST body goes upstream as it came, and
the answer comes back as the gateway sends it — a JSON answer read whole and sent with its
length, an SSE stream relayed read by read. No key, no Redis, no parsing, no metrics: what
any Python proxy on this stack pays, so the gateway's figures can be read as a multiple of it.
"""

from __future__ import annotations

import os

import aiohttp

from common.asgi import Receive, Scope, Send

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_UPSTREAM_HEADERS = {"authorization": "Bearer floor", "content-type": "application/json"}


class FloorProxy:
    def __init__(self, upstream_url: str) -> None:
        self._url = upstream_url
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._proxy(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(
                    limit=1000, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
                )
                self._session = aiohttp.ClientSession(
                    connector=connector,
                    timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=30),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    raise_for_status=False,
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, receive: Receive, send: Send) -> None:
        assert self._session is not None, "lifespan did not run"
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        async with self._session.post(self._url, data=body, headers=_UPSTREAM_HEADERS) as answer:
            if answer.content_type != "text/event-stream":
                data = await answer.read()
                headers = [*_JSON, (b"content-length", str(len(data)).encode())]
                await send({"type": "http.response.start", "status": answer.status,
                            "headers": headers})  # fmt: skip
                await send({"type": "http.response.body", "body": data})
                return
            await send({"type": "http.response.start", "status": answer.status, "headers": _SSE})
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


def create_app() -> FloorProxy:
    return FloorProxy(os.environ["FLOOR_UPSTREAM_URL"])
