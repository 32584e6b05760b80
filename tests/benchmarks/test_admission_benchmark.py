"""Admission round trip: `Admitter.admit` + `Admitter.commit` on warm records, real Valkey.

Steady state is one EVALSHA before the provider call and one after (DESIGN.md, the hot path).
The calls run in batches on a dedicated uvloop loop, as in the gateway; the session's loop
(pytest-asyncio) only seeds Postgres. The loader's database is a stub that fails if touched:
warm admission must not reach Postgres.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, cast

import asyncpg
import pytest
import pytest_asyncio
import uvloop

from common import keyspace
from common.redis_store import LuaScripts, create_redis
from crypto.api_keys import shard_of_key_hash
from gateway.admission import AdmissionLimits, Admitter
from gateway.call_result import NOT_ANSWERED, CallResult
from gateway.providers.base import Usage
from gateway.records import RecordLoader
from tests.factories import ApiKey, Developer, make_agent, make_developer, make_key
from tests.processes import Servers

BATCH = 50
QUOTA = 10**9
LIMITS = AdmissionLimits(
    free_per_window=10,
    paid_per_window=10**9,  # the rate limiter never refuses here
    window_ms=60_000,
    reservation_ms=900_000,
    trial_calls=0,  # every call is charged to quota
)

ANSWERED = CallResult.answered(Usage(input_tokens=12, output_tokens=34))


class NoPostgres:
    """Stands in for the pool: any use is a test failure."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"warm admission touched Postgres ({name})")


class AdmissionBench:
    def __init__(self, redis_url: str, developer: Developer, key: ApiKey, agent_id: str) -> None:
        self.loop = uvloop.new_event_loop()
        self.redis = create_redis(redis_url)
        scripts = LuaScripts(self.redis)
        no_postgres = cast(asyncpg.Pool, NoPostgres())
        loader = RecordLoader(no_postgres, self.redis, scripts, Decimal("0.01"))
        self.admitter = Admitter(scripts, loader, LIMITS)
        self.developer, self.key_hash, self.agent_id = developer, key.key_hash, agent_id
        self.shard = shard_of_key_hash(key.key_hash)
        self.calls = 0
        self.cpu_s = 0.0  # this process's CPU time inside run_batch

    async def call(self) -> None:
        admission = await self.admitter.admit(
            self.key_hash, self.shard, self.agent_id, uuid.uuid4().hex
        )
        assert (admission.user_id, admission.charge, admission.units) == (
            self.developer.user_id, "quota", 1,
        )  # fmt: skip
        settled = await self.admitter.commit(
            admission, ANSWERED, latency_ms=5, request_id=admission.call_id
        )
        assert settled
        self.calls += 1

    async def batch(self) -> None:
        for _ in range(BATCH):
            await self.call()

    def run_batch(self) -> None:
        started = time.process_time()
        self.loop.run_until_complete(self.batch())
        self.cpu_s += time.process_time() - started

    def quota_left(self) -> int:
        quota_key = keyspace.quota(self.shard, self.developer.user_id)
        return int(self.loop.run_until_complete(self.redis.get(quota_key)))

    def reserved(self) -> int:
        return int(self.loop.run_until_complete(self.redis.hlen(keyspace.reservations(self.shard))))

    def close(self) -> None:
        self.loop.run_until_complete(self.redis.aclose())
        self.loop.close()


@pytest_asyncio.fixture
async def seeded(db_pool: asyncpg.Pool, servers: Servers) -> tuple[Developer, ApiKey, str]:
    """A paid developer, its key and an agent, with their Redis records filled by one call
    through an admitter that may use Postgres (on the session loop)."""
    developer = await make_developer(db_pool, quota=QUOTA, tier="paid")
    key = await make_key(db_pool, developer)
    agent = await make_agent(db_pool)
    redis = create_redis(servers.redis_url)
    try:
        scripts = LuaScripts(redis)
        loader = RecordLoader(db_pool, redis, scripts, Decimal("0.01"))
        admitter = Admitter(scripts, loader, LIMITS)
        shard = shard_of_key_hash(key.key_hash)
        admission = await admitter.admit(key.key_hash, shard, agent.agent_id, uuid.uuid4().hex)
        await admitter.commit(admission, NOT_ANSWERED, latency_ms=0, request_id="warm-up")
    finally:
        await redis.aclose()
    return developer, key, agent.agent_id


@pytest.fixture
def bench(servers: Servers, seeded: tuple[Developer, ApiKey, str]) -> Iterator[AdmissionBench]:
    state = AdmissionBench(servers.redis_url, *seeded)
    state.loop.run_until_complete(state.call())  # learn the key's owner: later calls are 1 trip
    yield state
    state.close()


def test_admit_and_commit_round_trip(benchmark: Any, bench: AdmissionBench) -> None:
    quota_before, calls_before = bench.quota_left(), bench.calls
    reserved_before = bench.reserved()
    benchmark.extra_info["calls_per_round"] = BATCH
    benchmark.pedantic(bench.run_batch, rounds=50, iterations=1, warmup_rounds=2)
    calls = bench.calls - calls_before
    benchmark.extra_info["client_cpu_us_per_call"] = round(bench.cpu_s / calls * 1e6, 1)
    # Every billable call kept exactly its one unit, and every reservation was settled.
    assert calls > 0
    assert bench.quota_left() == quota_before - calls
    assert bench.reserved() == reserved_before
