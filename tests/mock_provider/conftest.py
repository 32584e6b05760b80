"""The mock provider served by real uvicorn (uvloop + httptools) on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from mock_provider import create_app


@dataclass(frozen=True)
class MockServer:
    base_url: str

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound before the server starts: no free-port race
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mock-provider", daemon=True
    )
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, thread)
        yield MockServer(base_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive(), "the mock provider did not shut down"


def _wait_healthy(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=base_url, timeout=1) as client:
        while True:
            try:
                if client.get("/health").json() == {"status": "ok"}:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the mock provider did not start")
            time.sleep(0.02)


@pytest.fixture(scope="session")
def mock_http(mock_server: MockServer) -> Iterator[httpx.Client]:
    """A plain HTTP client on the mock (session-wide, so hypothesis tests may use it)."""
    with httpx.Client(base_url=mock_server.base_url, timeout=5) as client:
        yield client
