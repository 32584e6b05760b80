"""Fixtures for the admin API tests: an HTTP client on the session's control plane and admin
tokens per role (`super_admin` is the suite's, tests/conftest.py). Tests that watch what the
gateways do after an admin action use the session's `gateway_pair`."""

from __future__ import annotations

import asyncpg
import httpx
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common.domain import AdminRole
from tests.control_plane.admin.support import Gateways
from tests.control_plane.api_client import Admin, admin_session


@pytest_asyncio.fixture
async def gateways(
    gateway_pair: list[str], http: httpx.AsyncClient, redis: redis_asyncio.Redis
) -> Gateways:
    return Gateways(gateway_pair, http, redis)


@pytest_asyncio.fixture
async def moderator(db_pool: asyncpg.Pool) -> Admin:
    return await admin_session(db_pool, AdminRole.MODERATOR)
