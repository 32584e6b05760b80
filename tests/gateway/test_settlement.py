"""Settling a call whose task is cancelled while its commit is under way (uvicorn's shutdown
deadline): the commit still reaches Redis, `drain` waits for it, and the call is settled
exactly once, on the gateway's own Redis client and scripts against a real Valkey."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from common import keyspace
from common.redis_store import LuaScripts
from common.usage_events import CallStatus
from gateway.admission import Admitter
from gateway.call_result import CallResult
from gateway.hot_redis import HotRedis, HotScripts
from gateway.metrics import GatewayMetrics
from gateway.providers.base import Usage
from gateway.records import RecordLoader
from gateway.settlement import Settler
from tests.control_plane.helpers import UNIT_PRICE, limits
from tests.factories import make_account, make_agent
from tests.processes import Servers

ANSWERED = CallResult(CallStatus.SUCCESS, billable=True, http_status=200,
                      usage=Usage(input_tokens=5, output_tokens=7))  # fmt: skip


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8])
async def test_a_commit_cut_by_the_calls_cancellation_settles_the_call_once(
    steps: int, servers: Servers, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    # A fresh client: admission connects its first connection, the commit its second, so an
    # early cancellation lands before the commit was even sent.
    hot = HotRedis(servers.redis_url, timeout_s=5)
    try:
        admitter = Admitter(HotScripts(hot), RecordLoader(db_pool, redis, LuaScripts(redis),
                            UNIT_PRICE), limits())  # fmt: skip
        settler = Settler(admitter, GatewayMetrics(CollectorRegistry()))
        account, agent = (
            await make_account(db_pool, quota=10, tier="paid"),
            await make_agent(db_pool),
        )
        shard = account.developer.shard
        admission = await admitter.admit(
            account.key.key_hash, shard, agent.agent_id, uuid.uuid4().hex, request_id="r"
        )
        settle = asyncio.create_task(settler.settle(
            admission, ANSWERED, request_id="r", latency_ms=1, deadline=time.perf_counter() + 30
        ))  # fmt: skip
        for _ in range(steps):
            await asyncio.sleep(0)
        cancelled = settle.cancel()
        with pytest.raises(asyncio.CancelledError) if cancelled else contextlib.nullcontext():
            await settle
        await settler.drain(10)
        events = [
            fields
            for _, fields in await redis.xrange(keyspace.usage_stream(shard))
            if fields[b"call_id"] == admission.call_id.encode()
        ]
        assert len(events) == 1, f"settled {len(events)} times after {steps} loop steps"
        assert events[0][b"billable"] == b"1"
        assert not await redis.hexists(keyspace.reservations(shard), admission.call_id)
    finally:
        await hot.aclose()
