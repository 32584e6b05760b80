"""Fixtures for the admin API tests: an HTTP client on the session's control plane, admin
tokens per role, two gateway instances and a mock provider on the same Postgres and Redis
(so a test can watch what the gateway does after an admin action), and a control-plane state
for calling service functions such as `feature_flags.is_enabled` directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from common.domain import AdminRole
from common.redis_store import create_redis
from control_plane.settings import ControlPlaneSettings
from control_plane.state import ControlPlaneState
from crypto.passwords import PasswordHashing
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from mock_provider import create_app as create_mock_provider
from tests.conftest import Servers
from tests.control_plane.admin.support import Admin
from tests.control_plane.api_client import admin_token
from tests.factories import TEST_KEYRING
from tests.support import serve


@pytest_asyncio.fixture
async def client(control_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=control_url, timeout=15) as client:
        yield client


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


async def _admin(db: asyncpg.Pool, role: AdminRole) -> Admin:
    user_id, token = await admin_token(db, role)
    return Admin(user_id, token)


@pytest_asyncio.fixture
async def super_admin(db_pool: asyncpg.Pool) -> Admin:
    return await _admin(db_pool, AdminRole.SUPER_ADMIN)


@pytest_asyncio.fixture
async def moderator(db_pool: asyncpg.Pool) -> Admin:
    return await _admin(db_pool, AdminRole.MODERATOR)


@pytest_asyncio.fixture
async def redis(servers: Servers) -> AsyncIterator[redis_asyncio.Redis]:
    """The session's Redis, NOT flushed: the gateways' live state lives there."""
    client = create_redis(servers.redis_url, socket_timeout_s=5.0)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def admin_gateways(servers: Servers, control_env: dict[str, str]) -> Iterator[list[str]]:
    """A mock provider and two gateway instances sharing the session's Postgres and Redis."""
    with serve(create_mock_provider(), health_path="/health") as provider:
        env = {
            "DATABASE_URL": control_env["DATABASE_URL"],
            "REDIS_URL": servers.redis_url,
            "AGENTLINK_ENCRYPTION_KEYS": control_env["AGENTLINK_ENCRYPTION_KEYS"],
            "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": control_env["AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID"],
            "OPENAI_BASE_URL": f"{provider}/v1",
            "OPENAI_API_KEY": "mock-key",
            "UPSTREAM_TIMEOUT_S": "5",
            "LOG_LEVEL": "WARNING",
        }
        with (
            serve(create_gateway(GatewaySettings.from_env(env))) as first,
            serve(create_gateway(GatewaySettings.from_env(env))) as second,
        ):
            yield [first, second]


@pytest_asyncio.fixture
async def control_state(
    control_env: dict[str, str], db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> ControlPlaneState:
    """The state a control-plane handler gets, on the session's Postgres and Redis."""
    settings = ControlPlaneSettings.from_env(control_env, api=True)
    assert settings.api is not None
    return ControlPlaneState(
        settings=settings, api=settings.api, db=db_pool, redis=redis,
        registry=CollectorRegistry(), keyring=TEST_KEYRING,
        passwords=PasswordHashing(time_cost=1, memory_cost=1024, parallelism=1),
        dummy_password_hash="unused",
    )  # fmt: skip
