"""Gateway fixtures: the mock provider and a gateway, both over real HTTP on loopback, on the
session's real Postgres and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import GatewaySettings
from mock_provider import create_app as create_mock_provider
from tests.conftest import Servers
from tests.factories import TEST_KEYRING
from tests.support import serve

TEST_KEY_SPEC = "t1:" + "A" * 43 + "="
assert TEST_KEYRING.active_key_id == "t1"


@pytest.fixture(scope="session")
def mock_provider_url() -> Iterator[str]:
    with serve(create_mock_provider(), health_path="/health") as url:
        yield url


GatewayFactory = Callable[..., Starlette]


@pytest.fixture(scope="session")
def gateway_env(servers: Servers, database_url: str, mock_provider_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": servers.redis_url,
        "REDIS_SOCKET_TIMEOUT_S": "1",
        "AGENTLINK_ENCRYPTION_KEYS": TEST_KEY_SPEC,
        "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": "t1",
        "OPENAI_BASE_URL": f"{mock_provider_url}/v1",
        "OPENAI_API_KEY": "mock-key",
        "UPSTREAM_TIMEOUT_S": "3",
        "STREAM_FIRST_BYTE_TIMEOUT_S": "3",
        "STREAM_IDLE_TIMEOUT_S": "3",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="session")
def gateway_url(gateway_env: dict[str, str]) -> Iterator[str]:
    """One gateway for the session; tests needing other settings start their own."""
    with serve(create_app(GatewaySettings.from_env(gateway_env))) as url:
        yield url


@pytest.fixture
def start_gateway(gateway_env: dict[str, str]) -> Iterator[Callable[..., str]]:
    """Start a gateway with some settings overridden; stopped at the end of the test."""
    stack: list[object] = []

    def start(**overrides: str) -> str:
        context = serve(create_app(GatewaySettings.from_env({**gateway_env, **overrides})))
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)  # type: ignore[attr-defined]


@pytest_asyncio.fixture
async def redis(servers: Servers) -> AsyncIterator[redis_asyncio.Redis]:
    """A client on the shared Redis, NOT flushed: the gateway's live state lives there."""
    client = redis_asyncio.Redis.from_url(servers.redis_url)
    yield client
    await client.aclose()
