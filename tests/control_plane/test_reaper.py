"""The reservation reaper against the real Redis: expired reservations are given back (quota
or trial) with a non-billable `cancelled` event; unexpired ones are never touched."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import redis.asyncio as redis_asyncio

from common import keyspace
from common.redis_store import LuaScripts
from control_plane.reaper import reap_expired
from control_plane.usage_ingest import ingest_once
from gateway.call_result import CallResult
from gateway.providers.base import Usage
from tests.control_plane.helpers import (
    Expected,
    Producer,
    assert_totals,
    call_log_rows,
    live_quota,
    stream_entries,
)

ANSWERED = CallResult.answered(Usage(input_tokens=1, output_tokens=1))


async def test_expired_reservations_are_given_back_with_a_cancelled_event(
    db_pool: asyncpg.Pool,
    redis_client: redis_asyncio.Redis,  # an empty Redis: no other test's reservations
    redis: redis_asyncio.Redis,
    scripts: LuaScripts,
    producer: Producer,
) -> None:
    account = await producer.account(quota=10)
    agent = await producer.agent(price=Decimal("0.02"))  # 2 units a call
    short = producer.admitter_with(reservation_ms=30)
    admissions = [
        await producer.admit(account, agent, short, request_id=f"client-{i}") for i in range(5)
    ]
    assert [a.charge for a in admissions] == ["trial"] * 3 + ["quota"] * 2
    assert await live_quota(redis, account) == 6
    shard, user_id = account.developer.shard, account.developer.user_id
    await asyncio.sleep(0.06)  # past every deadline; the gateway "died" before committing

    assert await reap_expired(redis, scripts) == 5

    assert await live_quota(redis, account) == 10
    trials = await redis.hget(keyspace.trials(shard, user_id), agent.agent_id)
    assert int(trials or 0) == 0
    assert await redis.hlen(keyspace.reservations(shard)) == 0
    assert await redis.zcard(keyspace.reservation_deadlines(shard)) == 0
    events = [fields for _, fields in await stream_entries(redis, shard)]
    assert sorted(e[b"call_id"].decode() for e in events) == sorted(a.call_id for a in admissions)
    for event in events:
        assert (event[b"billable"], event[b"units"], event[b"status"]) == (
            b"0",
            b"0",
            b"cancelled",
        )
        assert event[b"error_code"] == b"reaped"
    # Each keeps the client's request id, from the reservation.
    client_ids = {a.call_id: f"client-{i}".encode() for i, a in enumerate(admissions)}
    assert {e[b"call_id"].decode(): e[b"request_id"] for e in events} == client_ids
    # The gateway coming back to life cannot settle what was reaped ...
    assert not await producer.admitter.commit(
        admissions[0], ANSWERED, latency_ms=1, request_id="late"
    )
    # ... and a second sweep finds nothing.
    assert await reap_expired(redis, scripts) == 0

    # The worker logs the reaped calls as not billable: nothing is charged anywhere.
    await ingest_once(redis, db_pool)
    expected = Expected(calls={a.call_id for a in admissions})
    await assert_totals(db_pool, expected, [account], [agent])
    rows = await call_log_rows(db_pool, [user_id])
    assert {(r["status"], r["billable"], r["error_code"]) for r in rows} == {
        ("cancelled", False, "reaped")
    }
    assert {r["request_id"]: r["client_request_id"].encode() for r in rows} == client_ids


async def test_unexpired_reservations_are_never_touched(
    redis_client: redis_asyncio.Redis,
    redis: redis_asyncio.Redis,
    scripts: LuaScripts,
    producer: Producer,
) -> None:
    account = await producer.account(quota=10)
    agent = await producer.agent()
    expired = producer.admitter_with(reservation_ms=20)
    live = producer.admitter_with(reservation_ms=60_000)
    old = [await producer.admit(account, agent, expired) for _ in range(4)]  # 3 trials + 1 unit
    await asyncio.sleep(0.05)
    fresh = [await producer.admit(account, agent, live) for _ in range(2)]  # 2 units
    assert await live_quota(redis, account) == 7

    assert await reap_expired(redis, scripts) == 4

    shard = account.developer.shard
    assert await live_quota(redis, account) == 8  # only the expired reservation's unit is back
    trials = await redis.hget(keyspace.trials(shard, account.developer.user_id), agent.agent_id)
    assert int(trials or 0) == 0
    pending: list[bytes] = await redis.hkeys(keyspace.reservations(shard))  # type: ignore[assignment]
    assert sorted(p.decode() for p in pending) == sorted(a.call_id for a in fresh)
    assert await redis.zcard(keyspace.reservation_deadlines(shard)) == 2
    assert {f[b"call_id"].decode() for _, f in await stream_entries(redis, shard)} == {
        a.call_id for a in old
    }
    # The live calls still settle normally, and stay charged.
    for admission in fresh:
        assert await producer.admitter.commit(admission, ANSWERED, latency_ms=1, request_id="ok")
    assert await reap_expired(redis, scripts) == 0
    assert await live_quota(redis, account) == 8


async def test_a_shard_with_more_due_than_one_call_reaps_is_swept_to_the_end(
    redis_client: redis_asyncio.Redis,
    redis: redis_asyncio.Redis,
    scripts: LuaScripts,
    producer: Producer,
) -> None:
    account = await producer.account(quota=50)
    agent = await producer.agent()
    short = producer.admitter_with(reservation_ms=10)
    for _ in range(7):
        await producer.admit(account, agent, short)
    await asyncio.sleep(0.03)
    assert await reap_expired(redis, scripts, per_call_limit=2) == 7
    assert await live_quota(redis, account) == 50
    assert await redis.hlen(keyspace.reservations(account.developer.shard)) == 0


async def test_a_sweep_with_nothing_due_reaps_nothing(
    redis: redis_asyncio.Redis, scripts: LuaScripts
) -> None:
    await reap_expired(redis, scripts)
    for _ in range(5):
        assert await reap_expired(redis, scripts) == 0
