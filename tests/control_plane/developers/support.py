"""Helpers shared by the developers, marketplace and reviews tests: call_logs rows written
directly (as the usage worker would), and a ControlPlaneState for calling services in-process."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import asyncpg
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from control_plane.settings import ControlPlaneSettings
from control_plane.state import ControlPlaneState
from crypto.envelope import KeyRing
from crypto.passwords import PasswordHashing


async def insert_calls(
    db: asyncpg.Pool,
    *,
    user_id: str,
    agent_id: str,
    count: int,
    billable: bool = True,
    status: str = "success",
    units: int = 1,
    cost: Decimal = Decimal("0.01"),
    created_at: datetime | None = None,
    input_tokens: int = 10,
    output_tokens: int = 20,
    api_key_id: str | None = None,
) -> None:
    """`count` call_logs rows for (user, agent); created now() unless `created_at` is given
    (the partitions of the previous, current and next months exist)."""
    if not billable:
        units, cost = 0, Decimal(0)
    await db.execute(
        """INSERT INTO call_logs (request_id, agent_id, agent_version, api_key_id, user_id, units,
                                  billable, input_tokens, output_tokens, latency_ms, status,
                                  cost_usd, created_at)
           SELECT gen_random_uuid()::text, $1, 1, $2, $3, $4, $5, $6, $7, 5, $8, $9,
                  coalesce($10, now())
           FROM generate_series(1, $11)""",
        agent_id,
        api_key_id or str(uuid.uuid4()),
        user_id,
        units,
        billable,
        input_tokens,
        output_tokens,
        status,
        cost,
        created_at,
        count,
    )


def control_state(
    control_env: dict[str, str], db: asyncpg.Pool, redis: redis_asyncio.Redis
) -> ControlPlaneState:
    """What the app builds at start-up, on the test's own pool and Redis client."""
    settings = ControlPlaneSettings.from_env(control_env, api=True)
    api = settings.api
    assert api is not None
    hashing = PasswordHashing(time_cost=1, memory_cost=1024, parallelism=1)
    return ControlPlaneState(
        settings=settings,
        api=api,
        db=db,
        redis=redis,
        registry=CollectorRegistry(),
        keyring=KeyRing.from_env(api.encryption_keys, api.encryption_active_key_id),
        passwords=hashing,
        dummy_password_hash=hashing.hash("not-a-real-password"),
    )
