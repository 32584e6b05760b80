"""common/feature_flags.py on the real Redis and Postgres: the snapshot comes from `ff:all`,
from Postgres when the hash has expired (refilling it without overwriting a newer value), and
stays what it was when neither answers (flags fail static)."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import redis.asyncio as redis_asyncio

from common import keyspace
from common.db import create_pool
from common.feature_flags import FeatureFlags, FlagSnapshot
from common.redis_store import create_redis
from devstack.servers import free_port


def test_missing_flags_keep_the_seeded_defaults() -> None:
    assert FlagSnapshot.of({}) == FlagSnapshot(
        maintenance_mode=False, enable_trial_mode=True, enable_rag=True
    )
    assert FlagSnapshot.of({"maintenance_mode": True, "other": False}).maintenance_mode


async def test_the_snapshot_follows_redis_then_postgres_and_refills_the_cache(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    flags = FeatureFlags(redis, db_pool, refresh_s=60)
    seeded = {r["key"]: r["enabled"] for r in await db_pool.fetch("SELECT * FROM feature_flags")}
    await redis.delete(keyspace.FEATURE_FLAGS)
    assert await flags.refresh()
    assert flags.current == FlagSnapshot.of(seeded)
    cached = await redis.hgetall(keyspace.FEATURE_FLAGS)
    assert {k.decode(): v == b"1" for k, v in cached.items()} == seeded
    assert 0 < await redis.ttl(keyspace.FEATURE_FLAGS) <= 30

    # An admin's change is in Redis first (control_plane/feature_flags): the next refresh has it.
    await redis.hset(keyspace.FEATURE_FLAGS, "enable_trial_mode", "0")
    try:
        assert await flags.refresh()
        assert flags.current.enable_trial_mode is False
    finally:
        await redis.hset(keyspace.FEATURE_FLAGS, "enable_trial_mode", "1")


async def test_flags_fail_static_when_storage_is_away(database_url: str) -> None:
    dead_redis = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.2)
    pool = await create_pool(database_url, min_size=0, max_size=1)
    flags = FeatureFlags(dead_redis, pool, refresh_s=60)
    try:
        assert await flags.refresh()  # Redis away: Postgres answers
        from_postgres = flags.current
        flags.current = FlagSnapshot(maintenance_mode=True)
        await pool.close()
        assert await flags.refresh() is False  # both away: the last snapshot stands
        assert flags.current == FlagSnapshot(maintenance_mode=True)
        assert from_postgres.maintenance_mode is False
    finally:
        await dead_redis.aclose()


async def test_the_refresher_stops_at_once_when_cancelled_mid_command(
    db_pool: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    """A cancellation that lands inside a redis-py command can be swallowed by the client;
    the refresher must stop anyway (it used to refresh on until its 5 s stop timeout, which
    held up every gateway worker's shutdown). Cancelled at many moments of its Redis and
    Postgres round trips, it stops within a fraction of a second each time."""
    moments = random.Random(13)
    slow = []
    for attempt in range(40):
        await redis_client.delete(keyspace.FEATURE_FLAGS)  # Postgres, then the refill, too
        flags = FeatureFlags(redis_client, db_pool, refresh_s=0.001)
        running = flags.running()
        await running.__aenter__()
        await asyncio.sleep(moments.uniform(0, 0.03))
        started = time.monotonic()
        await running.__aexit__(None, None, None)
        if (took := time.monotonic() - started) > 1:
            slow.append((attempt, round(took, 1)))
    assert slow == []
