"""The usage event's one field list holds for both scripts that append events: what
commit.lua and reap.lua write is exactly `USAGE_EVENT_FIELDS`, in order, and parses."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_asyncio

from common import keyspace
from common.redis_store import LuaScripts
from common.usage_events import USAGE_EVENT_FIELDS, UsageEvent
from control_plane.reaper import reap_expired
from tests.control_plane.helpers import Producer, entries_of


async def _newest_event(redis: redis_asyncio.Redis, shard: int) -> dict[bytes, bytes]:
    ((_, fields),) = await entries_of(redis, keyspace.usage_stream(shard), newest=1)
    return fields


async def test_commit_appends_exactly_the_usage_event_fields(
    redis: redis_asyncio.Redis, producer: Producer
) -> None:
    account = await producer.account()
    admission = await producer.call(account, await producer.agent(), billable=True)
    fields = await _newest_event(redis, account.developer.shard)
    assert [name.decode() for name in fields] == list(USAGE_EVENT_FIELDS)
    event = UsageEvent.from_stream_fields(fields)
    assert (event.call_id, event.status, event.billable) == (admission.call_id, "success", True)
    assert (event.user_id, event.key_id) == (admission.user_id, admission.key_id)


async def test_reap_appends_exactly_the_usage_event_fields(
    redis: redis_asyncio.Redis, scripts: LuaScripts, producer: Producer
) -> None:
    account = await producer.account()
    admission = await producer.admit(
        account, await producer.agent(), producer.admitter_with(reservation_ms=20)
    )
    await asyncio.sleep(0.05)
    assert await reap_expired(redis, scripts) >= 1
    fields = await _newest_event(redis, account.developer.shard)
    assert [name.decode() for name in fields] == list(USAGE_EVENT_FIELDS)
    event = UsageEvent.from_stream_fields(fields)
    assert (event.call_id, event.status, event.error_code) == (
        admission.call_id, "cancelled", "reaped",
    )  # fmt: skip
    assert event.latency_ms >= 20
