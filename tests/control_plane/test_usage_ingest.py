"""Usage ingestion against the real Redis and Postgres: events made by the gateway's own
admission and commit scripts land in call_logs exactly once and move the aggregates once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from control_plane.settings import UsageIngestSettings
from control_plane.usage_ingest import (
    DEAD_LETTER_STREAM,
    GROUP,
    StreamEntry,
    UsageIngester,
    ingest_once,
    parse,
)
from control_plane.worker_metrics import WorkerMetrics
from gateway.call_result import CallResult
from gateway.providers.base import Usage
from tests.control_plane.helpers import (
    Calls,
    Expected,
    Producer,
    assert_totals,
    assert_written_once,
    call_log_rows,
    entries_of,
    has_rows,
    live_quota,
    stream_entries,
)
from tests.support import wait_until


def settings(**overrides: Any) -> UsageIngestSettings:
    return dataclasses.replace(UsageIngestSettings.from_env({}), **overrides)


def event_fields(**overrides: object) -> dict[str, object]:
    """The fields commit.lua writes, for a made-up call."""
    fields: dict[str, object] = {
        "call_id": uuid.uuid4().hex,
        "request_id": "client-1",
        "user_id": str(uuid.uuid4()),
        "key_id": str(uuid.uuid4()),
        "agent_id": str(uuid.uuid4()),
        "agent_version": 1,
        "charge": "quota",
        "units": 0,
        "billable": "0",
        "status": "error",
        "input_tokens": 1,
        "output_tokens": 0,
        "latency_ms": 5,
        "error_code": "50201",
        "ts_ms": int(time.time() * 1000),
    }
    fields.update(overrides)
    return fields


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def pending_count(redis: redis_asyncio.Redis, shard: int) -> int:
    summary = await redis.xpending(keyspace.usage_stream(shard), GROUP)
    return int(summary["pending"])


async def drained_then(
    redis: redis_asyncio.Redis,
    db_pool: asyncpg.Pool,
    producer: Producer,
    billable: Iterable[bool] = (),
    *,
    price: Decimal = Decimal("0.01"),
) -> Calls:
    """Drain what earlier tests left in the streams, then make new calls."""
    await ingest_once(redis, db_pool)
    return await producer.calls(billable, price=price)


async def assert_stream_done(redis: redis_asyncio.Redis, calls: Calls) -> None:
    """Written, acknowledged and deleted: nothing is left in the stream or pending."""
    assert await stream_entries(redis, calls.shard) == []
    assert await pending_count(redis, calls.shard) == 0


async def test_admitted_calls_land_once_and_move_the_aggregates(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    account = await producer.account(quota=100)
    agent = await producer.agent(price=Decimal("0.05"))  # 5 units a call
    expected = Expected()
    # Three free trials first (the non-billable one is given back and does not count) ...
    for billable in (True, False, True, True):
        admission = await producer.call(account, agent, billable=billable, expected=expected)
        assert admission.charge == "trial"
    # ... then quota; a client that hung up after the provider's 2xx is billed as cancelled.
    for billable, status in ((True, "success"), (False, "timeout"), (True, "cancelled")):
        admission = await producer.call(
            account, agent, billable=billable, status=status, expected=expected
        )
        assert (admission.charge, admission.units) == ("quota", 5)

    written = await ingest_once(redis, db_pool)
    assert written >= 7  # other tests' leftovers may be drained too

    await assert_totals(db_pool, expected, [account], [agent])
    rows = await call_log_rows(db_pool, [account.developer.user_id])
    by_status = sorted((r["status"], r["billable"], r["units"], r["cost_usd"]) for r in rows)
    assert by_status == sorted(
        [("success", True, 0, Decimal(0))] * 3  # trials cost nothing
        + [("error", False, 0, Decimal(0))]
        + [("success", True, 5, Decimal("0.05")), ("timeout", False, 0, Decimal(0))]
        + [("cancelled", True, 5, Decimal("0.05"))]
    )
    for row in rows:
        assert row["client_request_id"] == f"client-{row['request_id'][:8]}"
        assert row["agent_version"] == 1
        assert row["api_key_id"] == uuid.UUID(account.key.key_id)
        assert row["error_code"] == (None if row["billable"] else "50201")
    # Postgres caught up with Redis' live balance.
    assert await live_quota(redis, account) == 100 - 10
    await assert_stream_done(redis, Calls(account, agent, expected))


async def test_redelivery_after_a_crash_between_commit_and_ack_counts_nothing_twice(
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    producer: Producer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = await drained_then(
        redis, db_pool, producer, (index % 4 != 1 for index in range(12)), price=Decimal("0.02")
    )

    crashing = UsageIngester(redis, db_pool, consumer=f"crashing-{uuid.uuid4().hex[:6]}")
    await crashing.ensure_groups()

    async def crash(self: UsageIngester, entries: object) -> None:
        raise ConnectionError("worker died after COMMIT, before XACK")

    with monkeypatch.context() as patch:
        patch.setattr(UsageIngester, "_acknowledge", crash)
        with pytest.raises(ConnectionError):
            await crashing.drain()
    await assert_written_once(db_pool, calls)  # the commit happened
    assert await pending_count(redis, calls.shard) == 12  # the ack did not

    # Another consumer takes the entries over and processes them again: no new row, no total
    # moves, and this time they are acknowledged.
    survivor = UsageIngester(redis, db_pool, consumer=f"survivor-{uuid.uuid4().hex[:6]}")
    assert await survivor.claim_stale(min_idle_ms=0) == 0
    await assert_written_once(db_pool, calls)
    await assert_stream_done(redis, calls)
    assert await ingest_once(redis, db_pool) == 0


async def test_the_same_event_twice_in_one_batch_is_written_once(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    calls = await producer.calls([True])
    stream = calls.stream
    ((_, fields),) = await entries_of(redis, stream)
    await redis.xadd(stream, fields)  # type: ignore[arg-type]  # a copy, as a buggy replay might append
    ingester = UsageIngester(redis, db_pool)
    await ingester.ensure_groups()
    entries = await ingester.read_new(block_ms=None)
    ours = [e for e in entries if e.stream == stream]
    assert len(ours) == 2
    result = await ingester.process(entries)
    assert result.acknowledged == len(entries)
    await assert_written_once(db_pool, calls)
    assert await stream_entries(redis, calls.shard) == []


async def test_entries_a_dead_consumer_left_pending_are_claimed(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    calls = await drained_then(redis, db_pool, producer, (index != 2 for index in range(5)))
    stream = calls.stream
    dead = f"dead-{uuid.uuid4().hex[:6]}"
    delivered: Any = await redis.xreadgroup(GROUP, dead, {stream: ">"}, count=100)
    assert len(delivered[0][1]) == 5  # read, then the process died without acking

    # New entries only: a live consumer never sees what was delivered to another one ...
    assert await ingest_once(redis, db_pool) == 0
    assert await call_log_rows(db_pool, [calls.user_id]) == []
    # ... until those entries have been idle long enough to be taken over.
    metrics = WorkerMetrics()
    live = UsageIngester(redis, db_pool, metrics=metrics)
    assert await live.claim_stale(min_idle_ms=60_000) == 0
    await asyncio.sleep(0.05)
    assert await live.claim_stale(min_idle_ms=20) == 5
    assert sample(metrics, "agentlink_worker_usage_claimed_total") == 5
    await assert_written_once(db_pool, calls)
    assert await pending_count(redis, calls.shard) == 0

    # The dead consumer has nothing pending any more and, once idle long enough, is removed.
    sweeper = UsageIngester(redis, db_pool, settings=settings(consumer_idle_delete_s=0.01))
    assert await sweeper.forget_idle_consumers() >= 1
    consumers = await redis.xinfo_consumers(stream, GROUP)
    assert dead not in {c["name"].decode() for c in consumers}


async def test_malformed_entries_go_to_the_dead_letter_stream(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    calls = await drained_then(redis, db_pool, producer, [True])
    stream = calls.stream
    bad: list[dict[str, object]] = [
        {"hello": "world"},
        event_fields(agent_id="not-a-uuid"),
        event_fields(units=3),  # units on a call that is not billable
        event_fields(billable="1", status="timeout", units=1),
        event_fields(status="exploded"),
        event_fields(ts_ms="yesterday"),
        event_fields(input_tokens=-1),
        event_fields(call_id=b"\xff\xfe"),
        event_fields(error_code="x" * 65),
    ]
    bad_ids: list[Any] = [await redis.xadd(stream, fields) for fields in bad]  # type: ignore[arg-type]
    await producer.call(calls.account, calls.agent, billable=False, expected=calls.expected)

    metrics = WorkerMetrics()
    await ingest_once(redis, db_pool, metrics=metrics)

    await assert_written_once(db_pool, calls)  # the good ones got through
    assert sample(metrics, "agentlink_worker_usage_dead_lettered_total") == len(bad)
    await assert_stream_done(redis, calls)
    dead = await entries_of(redis, DEAD_LETTER_STREAM, newest=len(bad))
    by_id = {fields[b"_id"]: fields for _, fields in dead}
    assert set(by_id) == set(bad_ids)
    for entry_id, original in zip(bad_ids, bad, strict=True):
        fields = by_id[entry_id]
        assert fields[b"_stream"] == stream.encode()
        assert fields[b"_error"]
        for name in original:
            assert name.encode() in fields  # the original entry is kept for a human


async def test_an_event_postgres_refuses_is_isolated_and_dead_lettered(
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    producer: Producer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should an event pass the parse checks and still break a constraint, the batch is split
    until that event is alone; the others are written, it is dead-lettered."""
    monkeypatch.setattr(parse, "_MAX_ERROR_CODE", 1000)  # let a too-long code through
    calls = await drained_then(redis, db_pool, producer, [True] * 3)
    poison = event_fields(
        user_id=calls.user_id, agent_id=calls.agent.agent_id, error_code="e" * 100
    )
    poison_id = await redis.xadd(calls.stream, poison)  # type: ignore[arg-type]
    for _ in range(4):
        await producer.call(calls.account, calls.agent, billable=True, expected=calls.expected)

    metrics = WorkerMetrics()
    await ingest_once(redis, db_pool, metrics=metrics)

    await assert_written_once(db_pool, calls)
    assert sample(metrics, "agentlink_worker_usage_dead_lettered_total") == 1
    ((_, fields),) = await entries_of(redis, DEAD_LETTER_STREAM, newest=1)
    assert fields[b"_id"] == poison_id
    assert await stream_entries(redis, calls.shard) == []


async def test_a_month_without_a_partition_gets_one(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    calls = await drained_then(redis, db_pool, producer)
    account, agent = calls.account, calls.agent
    when = datetime(2041, 7, 15, 12, 0, tzinfo=UTC)
    exists = "SELECT to_regclass('call_logs_2041_07') IS NOT NULL"
    assert not await db_pool.fetchval(exists)
    fields = event_fields(
        user_id=account.developer.user_id,
        key_id=account.key.key_id,
        agent_id=agent.agent_id,
        billable="1",
        status="success",
        units=1,
        error_code="",
        ts_ms=int(when.timestamp() * 1000),
    )
    await redis.xadd(keyspace.usage_stream(account.developer.shard), fields)  # type: ignore[arg-type]

    assert await ingest_once(redis, db_pool) == 1

    assert await db_pool.fetchval(exists)
    (row,) = await call_log_rows(db_pool, [account.developer.user_id])
    assert row["created_at"] == when
    assert row["request_id"] == fields["call_id"]
    assert row["cost_usd"] == agent.price
    assert (
        await db_pool.fetchval(
            "SELECT used_quota FROM quotas WHERE user_id = $1", account.developer.user_id
        )
        == 1
    )


async def test_a_stream_entry_deleted_while_pending_is_just_acknowledged(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    ingester = UsageIngester(redis, db_pool)
    entry = StreamEntry(keyspace.usage_stream(7), b"1-1", None)
    result = await ingester.process([entry])
    assert (result.written, result.acknowledged, result.dead_lettered) == (0, 1, 0)


async def test_lag_counts_pending_and_undelivered_entries(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    calls = await drained_then(redis, db_pool, producer, [True] * 6)
    dead = f"dead-{uuid.uuid4().hex[:6]}"
    await redis.xreadgroup(GROUP, dead, {calls.stream: ">"}, count=2)  # 2 pending, 4 undelivered

    metrics = WorkerMetrics()
    ingester = UsageIngester(redis, db_pool, metrics=metrics)
    lag = await ingester.sample_lag()
    assert (lag.lag, lag.pending) == (6, 2)
    assert sample(metrics, "agentlink_worker_usage_stream_lag") == 6

    await ingester.drain()
    await ingester.claim_stale(min_idle_ms=0)
    lag = await ingester.sample_lag()
    assert (lag.lag, lag.pending) == (0, 0)


async def test_a_lost_consumer_group_is_recreated(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    """Redis restarted without its data (or was flushed): reading recreates the groups from
    id 0, so whatever is in the streams by then is still ingested."""
    calls = await drained_then(redis, db_pool, producer, [True])
    await redis.xgroup_destroy(calls.stream, GROUP)

    ingester = UsageIngester(redis, db_pool)
    assert await ingester.read_new(block_ms=None) == []  # NOGROUP: recreated
    await ingester.drain()
    await assert_written_once(db_pool, calls)


async def test_the_loop_retries_a_failing_batch_and_acks_only_once_it_is_written(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    calls = await drained_then(redis, db_pool, producer, [True] * 3)
    metrics = WorkerMetrics()
    ingester = UsageIngester(redis, db_pool, settings=settings(read_block_ms=50), metrics=metrics)
    write = ingester.write_events
    pending_while_down: list[int] = []

    async def postgres_down_once(events: Any) -> tuple[int, int]:
        if not pending_while_down:
            pending_while_down.append(await pending_count(redis, calls.shard))
            raise ConnectionError("postgres is down")
        return await write(events)

    stop = asyncio.Event()
    with mock.patch.object(ingester, "write_events", postgres_down_once):
        loop = asyncio.create_task(ingester.run(stop))
        try:
            await wait_until(lambda: has_rows(db_pool, calls.account, 3), 10, "the retried batch")
        finally:
            stop.set()
            await loop
    assert pending_while_down == [3]  # delivered, and not acknowledged while unwritten
    assert sample(metrics, "agentlink_worker_usage_batch_failures_total") == 1
    await assert_written_once(db_pool, calls)
    assert await pending_count(redis, calls.shard) == 0


async def test_stopping_while_postgres_is_down_acknowledges_nothing(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    calls = await drained_then(redis, db_pool, producer, [True] * 3)
    ingester = UsageIngester(redis, db_pool, settings=settings(read_block_ms=50))
    failed = asyncio.Event()

    async def postgres_down(events: Any) -> tuple[int, int]:
        failed.set()
        raise ConnectionError("postgres is down")

    stop = asyncio.Event()
    with mock.patch.object(ingester, "write_events", postgres_down):
        loop = asyncio.create_task(ingester.run(stop))
        await asyncio.wait_for(failed.wait(), 10)
        stop.set()
        await asyncio.wait_for(loop, 10)
    assert await call_log_rows(db_pool, [calls.user_id]) == []
    assert await pending_count(redis, calls.shard) == 3  # left for XAUTOCLAIM
    assert await UsageIngester(redis, db_pool).claim_stale(min_idle_ms=0) >= 3
    await assert_written_once(db_pool, calls)


async def test_two_consumers_at_once_write_every_event_once(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    """Several workers share the group: each entry goes to one of them, and their concurrent
    transactions (touching the same agents, creators and quotas) neither lose nor double an
    update, even when the same entries are also claimed while in flight."""
    await ingest_once(redis, db_pool)
    accounts = [await producer.account() for _ in range(6)]
    agents = [await producer.agent(Decimal("0.01")), await producer.agent(Decimal("0.02"))]
    expected = Expected()
    await asyncio.gather(
        *(
            producer.call(account, agent, billable=(index + offset) % 5 != 0, expected=expected)
            for offset, account in enumerate(accounts)
            for index, agent in enumerate(agents * 20)
        )
    )
    small = settings(batch_max=7, read_count=3)
    ingesters = [UsageIngester(redis, db_pool, settings=small, consumer=f"c{i}") for i in range(3)]
    await ingesters[0].ensure_groups()
    await asyncio.gather(
        *(ingester.drain() for ingester in ingesters),
        ingesters[0].claim_stale(min_idle_ms=0),
    )
    await assert_totals(db_pool, expected, accounts, agents)
    for account in accounts:
        assert await pending_count(redis, account.developer.shard) == 0


async def test_cached_input_tokens_land_in_call_logs(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, producer: Producer
) -> None:
    """The prompt tokens a provider served from its cache go from the commit through the
    usage event into call_logs.cached_input_tokens (a provider claiming more cached tokens
    than prompt tokens is held to the prompt's); the billing is the same either way."""
    account = await producer.account(quota=10)
    agent = await producer.agent()
    sent = {}
    for cached, prompt in ((0, 1200), (1024, 1200), (5000, 300)):
        admission = await producer.admit(account, agent)
        usage = Usage(input_tokens=prompt, output_tokens=7, cached_input_tokens=cached)
        assert await producer.admitter.commit(
            admission, CallResult.answered(usage), latency_ms=3, request_id="cache"
        )
        sent[admission.call_id] = (prompt, min(cached, prompt))
    await ingest_once(redis, db_pool)
    rows = await call_log_rows(db_pool, [account.developer.user_id])
    assert {r["request_id"]: (r["input_tokens"], r["cached_input_tokens"]) for r in rows} == sent
    assert {(r["billable"], r["cost_usd"]) for r in rows} == {(True, Decimal(0))}  # trials


def test_an_event_from_before_cached_tokens_reads_as_none_cached() -> None:
    """A gateway not yet upgraded (or a reaped call) appends no cached_input_tokens field."""
    fields = {name.encode(): str(value).encode() for name, value in event_fields().items()}
    assert parse.parse_entry(fields).cached_input_tokens == 0
    fields[b"cached_input_tokens"] = b"-1"
    with pytest.raises(parse.MalformedUsageEvent):
        parse.parse_entry(fields)
