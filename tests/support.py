"""Helpers the tests share: serve an ASGI app over real HTTP on a loopback port, and wait
boundedly for what another process does."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import uvicorn

from devstack.servers import free_port


@contextlib.contextmanager
def serve(
    app: Any, *, health_path: str = "/healthz", port: int | None = None, **options: Any
) -> Iterator[str]:
    """Run `app` under uvicorn in a background thread; yields its base URL. `options`
    override uvicorn's configuration (e.g. another `http` protocol class)."""
    port = port or free_port()
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "proxy_headers": False,  # as every server command runs it (issue 9, item 9)
        "http": "common.http_server:GuardedHttpProtocol",  # likewise (items 7 and 10)
        "loop": "asyncio",  # uvloop in a non-main thread leaks handles at shutdown
    }
    config = uvicorn.Config(app, **(settings | options))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("app did not start")
        time.sleep(0.02)
    httpx.get(base_url + health_path, timeout=5)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def wait_until(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    """Poll `check` until it holds; fail with `what` after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
