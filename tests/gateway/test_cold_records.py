"""Cold records: the only Postgres reads on the request path, and how few there are.

In process (no HTTP): `Admitter` and `RecordLoader` built as the gateway builds them, on the
session's real Postgres and Redis, with `RecordLoader.queries` counting Postgres round trips.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common import keyspace
from common.errors import ApiError, ErrorCode
from common.redis_store import LuaScripts, create_redis
from crypto.api_keys import generate_api_key
from gateway.admission import AdmissionLimits, Admitter
from gateway.records import RecordLoader
from tests.gateway.helpers import make_caller
from tests.processes import Servers

LIMITS = AdmissionLimits(
    free_per_window=10_000,
    paid_per_window=10_000,
    window_ms=60_000,
    reservation_ms=900_000,
    trial_calls=3,
)


@pytest_asyncio.fixture
async def gateway_redis(servers: Servers) -> AsyncIterator[redis_asyncio.Redis]:
    """A Redis client built as the gateway builds its own (pool size and all).

    The timeout is longer than the gateway's 2 s: 1,000 admissions queue for 256 connections,
    and on a loaded 2-core CI box the queue alone can outlast 2 s; this test counts queries,
    it does not time them."""
    client = create_redis(servers.redis_url, socket_timeout_s=15.0)
    yield client
    await client.aclose()


def build(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> tuple[Admitter, RecordLoader, LuaScripts]:
    scripts = LuaScripts(redis)
    loader = RecordLoader(db_pool, redis, scripts, Decimal("0.01"))
    return Admitter(scripts, loader, LIMITS), loader, scripts


@pytest.mark.parametrize("concurrency", [200, 1000])
async def test_a_cold_key_user_and_agent_cost_one_query_each(
    db_pool: asyncpg.Pool, gateway_redis: redis_asyncio.Redis, concurrency: int
) -> None:
    caller = await make_caller(db_pool, quota=concurrency)
    admitter, loader, _ = build(db_pool, gateway_redis)
    admissions = await asyncio.gather(
        *(
            admitter.admit(
                caller.key.key_hash, caller.shard, caller.agent.agent_id, uuid.uuid4().hex
            )
            for _ in range(concurrency)
        )
    )
    assert len({admission.call_id for admission in admissions}) == concurrency
    assert {admission.user_id for admission in admissions} == {caller.developer.user_id}
    assert loader.queries == 3  # key, user, agent: once each
    charges = [admission.charge for admission in admissions]
    assert charges.count("trial") == 3
    assert charges.count("quota") == concurrency - 3
    # Warm now: more calls query nothing.
    await admitter.admit(caller.key.key_hash, caller.shard, caller.agent.agent_id, "warm")
    assert loader.queries == 3


async def test_an_unknown_key_is_negatively_cached(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool)
    admitter, loader, _ = build(db_pool, redis)
    unknown = generate_api_key(caller.shard)  # well formed, right shard, never stored
    for _ in range(2):
        with pytest.raises(ApiError) as refused:
            await admitter.admit(
                unknown.key_hash, caller.shard, caller.agent.agent_id, uuid.uuid4().hex
            )
        assert refused.value.code is ErrorCode.INVALID_API_KEY
    assert loader.queries == 1
    record = keyspace.api_key_record(caller.shard, unknown.key_hash)
    assert await redis.hget(record, "status") == b"unknown"
    assert 0 < await redis.ttl(record) <= keyspace.UNKNOWN_KEY_TTL_S


async def test_concurrent_unknown_keys_are_one_query(
    db_pool: asyncpg.Pool, gateway_redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool)
    admitter, loader, _ = build(db_pool, gateway_redis)
    unknown = generate_api_key(caller.shard)
    results = await asyncio.gather(
        *(
            admitter.admit(unknown.key_hash, caller.shard, caller.agent.agent_id, uuid.uuid4().hex)
            for _ in range(200)
        ),
        return_exceptions=True,
    )
    assert all(
        isinstance(result, ApiError) and result.code is ErrorCode.INVALID_API_KEY
        for result in results
    )
    assert loader.queries == 1


@pytest.mark.parametrize("is_uuid", [True, False])
async def test_an_unknown_agent_is_negatively_cached(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, is_uuid: bool
) -> None:
    caller = await make_caller(db_pool)
    agent_id = str(uuid.uuid4()) if is_uuid else f"not-a-uuid-{uuid.uuid4().hex}"
    admitter, loader, _ = build(db_pool, redis)
    await admitter.admit(caller.key.key_hash, caller.shard, caller.agent.agent_id, "warm-up")
    warm = loader.queries
    for _ in range(2):
        with pytest.raises(ApiError) as refused:
            await admitter.admit(caller.key.key_hash, caller.shard, agent_id, uuid.uuid4().hex)
        assert refused.value.code is ErrorCode.AGENT_NOT_FOUND
    # A UUID is looked up once; a non-UUID is never sent to Postgres at all.
    assert loader.queries - warm == (1 if is_uuid else 0)
    assert await redis.hget(keyspace.agent_record(agent_id), "status") == b"unknown"


async def test_fill_record_never_overwrites_an_existing_record(
    redis: redis_asyncio.Redis, db_pool: asyncpg.Pool
) -> None:
    _, _, scripts = build(db_pool, redis)
    record = f"test:fill:{uuid.uuid4().hex}"
    assert await scripts["fill_record"](keys=[record], args=[60, "status", "ok", "user", "u1"]) == 1
    assert await redis.hgetall(record) == {b"status": b"ok", b"user": b"u1"}
    assert 0 < await redis.ttl(record) <= 60
    assert await scripts["fill_record"](keys=[record], args=[60, "status", "revoked"]) == 0
    assert await redis.hgetall(record) == {b"status": b"ok", b"user": b"u1"}
    await redis.delete(record)


class ControlPlaneWritesDuringTheRead:
    """A DB pool whose key read is followed, before the gateway's fill, by a control-plane
    revocation landing in Redis: the race a stale fill must lose."""

    def __init__(self, db: asyncpg.Pool, redis: redis_asyncio.Redis, record: str) -> None:
        self._db, self._redis, self._record = db, redis, record

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        row = await self._db.fetchrow(query, *args)
        await self._redis.hset(self._record, "status", "revoked")
        return row


async def test_a_stale_fill_never_overwrites_a_control_plane_write(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """Postgres said the key is fine, but the control plane wrote the revocation to Redis
    before the gateway's fill: the cold load must not resurrect the key."""
    caller = await make_caller(db_pool)
    record = keyspace.api_key_record(caller.shard, caller.key.key_hash)
    scripts = LuaScripts(redis)
    racing_db = ControlPlaneWritesDuringTheRead(db_pool, redis, record)
    loader = RecordLoader(racing_db, redis, scripts, Decimal("0.01"))  # type: ignore[arg-type]
    await loader.load_key(caller.key.key_hash, caller.shard)
    assert loader.queries == 1
    assert await redis.hgetall(record) == {b"status": b"revoked"}
    admitter = Admitter(scripts, loader, LIMITS)
    with pytest.raises(ApiError) as refused:
        await admitter.admit(caller.key.key_hash, caller.shard, caller.agent.agent_id, "x")
    assert refused.value.code is ErrorCode.INVALID_API_KEY
    assert loader.queries == 1


async def test_a_record_written_by_the_control_plane_is_not_reloaded(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """A MISS answered by a record that is there by the time the loader runs (filled by a
    concurrent load or the control plane) costs no query and is kept as it is."""
    caller = await make_caller(db_pool)
    _, loader, _ = build(db_pool, redis)
    record = keyspace.api_key_record(caller.shard, caller.key.key_hash)
    await redis.hset(record, "status", "revoked")
    await loader.load_key(caller.key.key_hash, caller.shard)
    assert loader.queries == 0
    assert await redis.hgetall(record) == {b"status": b"revoked"}


async def test_cold_user_load_keeps_the_live_quota_and_trials(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """Redis holds the live balance; a user-record reload never resets it from Postgres."""
    caller = await make_caller(db_pool, quota=100, trials_used=1)
    _, loader, _ = build(db_pool, redis)
    user_id = caller.developer.user_id
    await redis.set(keyspace.quota(caller.shard, user_id), 7)
    await redis.hset(keyspace.trials(caller.shard, user_id), caller.agent.agent_id, 3)
    await loader.load_user(user_id, caller.shard)
    assert await redis.get(keyspace.quota(caller.shard, user_id)) == b"7"
    assert await redis.hget(keyspace.trials(caller.shard, user_id), caller.agent.agent_id) == b"3"
    record = keyspace.user_record(caller.shard, user_id)
    # With what the control plane checks access tokens against (item 12 of issue 9).
    assert await redis.hgetall(record) == {
        b"status": b"active", b"tier": b"free", b"type": b"developer", b"role": b"",
        b"gen": b"0",
    }  # fmt: skip
    assert 0 < await redis.ttl(record) <= keyspace.RECORD_TTL_S


async def test_premium_agent_record_carries_its_units(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool, price=Decimal("0.05"))
    _, loader, _ = build(db_pool, redis)
    await loader.load_agent(caller.agent.agent_id)
    fields = await redis.hgetall(keyspace.agent_record(caller.agent.agent_id))
    assert fields == {b"status": b"active", b"version": b"1", b"units": b"5", b"knowledge": b"0"}
