"""Fixtures for the admin API tests: an HTTP client on the session's control plane and admin
tokens per role. Tests that watch what the gateways do after an admin action use the
session's `gateway_pair`."""

from __future__ import annotations

import asyncpg
import httpx
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common.domain import AdminRole
from tests.control_plane.admin.support import Admin, Gateways
from tests.control_plane.api_client import admin_token


@pytest_asyncio.fixture
async def gateways(
    gateway_pair: list[str], http: httpx.AsyncClient, redis: redis_asyncio.Redis
) -> Gateways:
    return Gateways(gateway_pair, http, redis)


async def _admin(db: asyncpg.Pool, role: AdminRole) -> Admin:
    user_id, token = await admin_token(db, role)
    return Admin(user_id, token)


@pytest_asyncio.fixture
async def super_admin(db_pool: asyncpg.Pool) -> Admin:
    return await _admin(db_pool, AdminRole.SUPER_ADMIN)


@pytest_asyncio.fixture
async def moderator(db_pool: asyncpg.Pool) -> Admin:
    return await _admin(db_pool, AdminRole.MODERATOR)
