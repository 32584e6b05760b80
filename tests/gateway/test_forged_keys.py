"""Forged keys are refused before any lookup (issue 9, item 8).

A flood of distinct, well-shaped random keys used to cost one `api_keys` query each (the
negative cache only helps for repeats). Now a current key carries its CRC32 and a legacy key
must be in the gateway's start-up set of legacy hashes, so such a flood costs no Postgres query
and no Redis round trip. Postgres queries are counted with asyncpg's query logger on a pool of
the test's own; Redis by the statistics of a Valkey of the test's own.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common.db import create_pool
from common.errors import ApiError, ErrorCode
from common.redis_store import LuaScripts, create_redis
from crypto.api_keys import generate_api_key, hash_api_key, shard_of_key
from devstack.servers import ValkeyServer
from gateway.admission import Admitter
from gateway.api_keys import KeyGate
from gateway.records import RecordLoader
from tests.gateway.helpers import assert_error, chat_url, make_caller
from tests.gateway.test_cold_records import LIMITS
from tests.processes import gateway_env, serve_gateway
from tests.support import free_port

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
FLOOD = 10_000


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def forged_current_key() -> str:
    """41 characters of the right shape whose checksum (almost surely) does not hold."""
    return "ak_" + random_base62(38)


def forged_legacy_key() -> str:
    return "ak_" + random_base62(32)


def legacy_key_in_shard(shard: int) -> str:
    """A key as they were made before the checksum: `ak_` + 32, hashing into `shard`."""
    while True:
        key = forged_legacy_key()
        if shard_of_key(key) == shard:
            return key


def headers(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-agentlink-key", key.encode())]


async def identify_then_admit(gate: KeyGate, admitter: Admitter, key: str, agent_id: str) -> None:
    """What the chat endpoint does with a key before it reads the body (gateway/proxy.py)."""
    key_hash = await gate.key_hash(headers(key))
    await admitter.admit(key_hash, shard_of_key(key), agent_id, uuid.uuid4().hex)


class QueryCounter:
    """Every statement any connection of the pool runs (asyncpg's query logger), but the
    pool's own reset of a released connection."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def init(self, connection: asyncpg.Connection) -> None:
        connection.add_query_logger(self._log)

    def _log(self, record: asyncpg.connection.LoggedQuery) -> None:
        if not record.query.startswith("SELECT pg_advisory_unlock_all();"):
            self.queries.append(record.query)


@pytest_asyncio.fixture
async def counted_pool(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, QueryCounter]]:
    counter = QueryCounter()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, init=counter.init)
    assert pool is not None
    yield pool, counter
    await pool.close()


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[str]:
    """A Valkey nobody else uses, so its command and miss counters are this test's alone."""
    server = ValkeyServer(tmp_path / "valkey", free_port(), durable=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def redis_stats(client: redis_asyncio.Redis) -> tuple[int, int]:
    """(commands processed, keyspace misses) so far; the INFO call itself counts one."""
    stats = await client.info("stats")
    return int(stats["total_commands_processed"]), int(stats["keyspace_misses"])


async def lookup_commands(client: redis_asyncio.Redis) -> int:
    """Calls of the commands a key lookup makes (admission's script, the cold loader's reads
    and fill); a gateway's background work (the feature-flag refresh) makes none of them."""
    stats = await client.info("commandstats")
    names = ("evalsha", "evalsha_ro", "eval", "hmget", "hget", "exists", "hset")
    total = 0
    for name in names:
        entry = stats.get(f"cmdstat_{name}")
        if isinstance(entry, dict):
            total += int(entry["calls"])
        elif isinstance(entry, str):  # "calls=3,usec=..." when the client does not split it
            total += int(entry.split(",", 1)[0].removeprefix("calls="))
    return total


async def legacy_key(db: asyncpg.Pool) -> tuple[str, str, str]:
    """A developer with a legacy key stored as migration 0009 left it; (key, user, agent)."""
    caller = await make_caller(db)
    key = legacy_key_in_shard(caller.shard)
    await db.execute(
        "UPDATE api_keys SET key_hash = $2, legacy_format = true WHERE id = $1",
        uuid.UUID(caller.key.key_id),
        hash_api_key(key),
    )
    return key, caller.developer.user_id, caller.agent.agent_id


async def test_a_flood_of_forged_keys_costs_no_postgres_query_and_no_redis_miss(
    counted_pool: tuple[asyncpg.Pool, QueryCounter], db_pool: asyncpg.Pool, own_valkey: str
) -> None:
    """The gateway's step 1 then admission, built as the gateway builds them: 10,000 distinct
    forged keys, half of each shape, all 401 with nothing looked up anywhere."""
    pool, counter = counted_pool
    key, _, agent_id = await legacy_key(db_pool)
    redis = create_redis(own_valkey, socket_timeout_s=5.0)
    try:
        gate = KeyGate(pool)
        assert await gate.load_legacy_hashes()
        assert len(counter.queries) == 1  # the start-up read of the legacy set
        loader = RecordLoader(pool, redis, LuaScripts(redis), Decimal("0.01"))
        admitter = Admitter(LuaScripts(redis), loader, LIMITS)
        before = await redis_stats(redis)
        for index in range(FLOOD):
            forged = forged_current_key() if index % 2 else forged_legacy_key()
            with pytest.raises(ApiError) as refused:
                await identify_then_admit(gate, admitter, forged, agent_id)
            assert refused.value.code is ErrorCode.INVALID_API_KEY
        after = await redis_stats(redis)
        assert len(counter.queries) == 1
        assert loader.queries == 0
        assert after[0] - before[0] == 1  # the second INFO: no command of the flood's
        assert after[1] - before[1] == 0
        # The legacy key we issued still passes step 1 and is looked up as before.
        assert await gate.key_hash(headers(key)) == hash_api_key(key)
    finally:
        await redis.aclose()


async def test_a_key_with_a_computed_checksum_is_looked_up_once_then_cached(
    counted_pool: tuple[asyncpg.Pool, QueryCounter], db_pool: asyncpg.Pool, own_valkey: str
) -> None:
    """What a CRC does not stop, documented: an attacker who computes checksums reaches the
    lookup, once per distinct key, and the negative cache answers the repeats."""
    pool, counter = counted_pool
    caller = await make_caller(db_pool)
    redis = create_redis(own_valkey, socket_timeout_s=5.0)
    try:
        gate = KeyGate(pool)
        loader = RecordLoader(pool, redis, LuaScripts(redis), Decimal("0.01"))
        admitter = Admitter(LuaScripts(redis), loader, LIMITS)
        computed = generate_api_key(caller.shard).plaintext  # valid checksum, never stored
        for _ in range(3):
            with pytest.raises(ApiError) as refused:
                await identify_then_admit(gate, admitter, computed, caller.agent.agent_id)
            assert refused.value.code is ErrorCode.INVALID_API_KEY
        assert loader.queries == 1
        assert sum("api_keys" in query for query in counter.queries) == 1
    finally:
        await redis.aclose()


async def test_legacy_keys_are_read_again_once_postgres_answers(database_url: str) -> None:
    """Postgres away at start-up: legacy keys are let through to the lookup (as before the
    checksum), and the set is read by a later request once Postgres answers."""
    pool = await create_pool(database_url, min_size=0, max_size=2)
    try:
        gate = KeyGate(pool)
        await pool.close()  # a pool that cannot answer, like Postgres not up yet
        forged = forged_legacy_key()
        assert not await gate.load_legacy_hashes()
        assert await gate.key_hash(headers(forged)) == hash_api_key(forged)
        assert not gate.legacy_hashes_loaded
    finally:
        await pool.close()


async def test_a_real_gateway_refuses_a_forged_flood_without_touching_redis(
    database_url: str, mock_provider_url: str, db_pool: asyncpg.Pool, own_valkey: str
) -> None:
    """Over HTTP: 1,000 distinct forged keys of both shapes are 401 and cost the gateway's Redis
    no lookup command and leave no negative-cache entry; the legacy key we issued and a
    current key still work."""
    key, _, agent_id = await legacy_key(db_pool)
    caller = await make_caller(db_pool)
    body = {"messages": [{"role": "user", "content": "hi"}]}
    redis = redis_asyncio.Redis.from_url(own_valkey)
    try:
        with serve_gateway(gateway_env(database_url, own_valkey, mock_provider_url)) as url:
            async with httpx.AsyncClient(timeout=30) as client:
                before = await lookup_commands(redis)
                for index in range(1_000):
                    forged = forged_current_key() if index % 2 else forged_legacy_key()
                    response = await client.post(
                        chat_url(url, agent_id), headers={"X-AgentLink-Key": forged}, json=body
                    )
                    assert_error(response, 401, "40103")
                assert await lookup_commands(redis) == before
                assert [key async for key in redis.scan_iter("ak:*")] == []  # no negative cache
                for plaintext, agent in (
                    (key, agent_id),
                    (caller.key.plaintext, caller.agent.agent_id),
                ):
                    response = await client.post(
                        chat_url(url, agent), headers={"X-AgentLink-Key": plaintext}, json=body
                    )
                    assert response.status_code == 200, response.text
                assert await lookup_commands(redis) > before  # the counter sees real lookups
    finally:
        await redis.aclose()
