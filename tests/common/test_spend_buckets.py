"""A capped key's spend bucket is named the same by admit.lua (which counts the units) and by
Python (the cold load that rebuilds it from call_logs, and the listing that shows it): the
day and the UTC calendar month of any instant, computed in Lua from server time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.records import spend_bucket, spend_bucket_start
from common.redis_store import read_lua_sources

_FUNCTION = re.compile(r"local function spend_bucket\(.*?\nend\n", re.S)
LUA_BUCKET = _FUNCTION.search(read_lua_sources()["admit"])
assert LUA_BUCKET is not None
SCRIPT = LUA_BUCKET.group(0) + "return spend_bucket(ARGV[1], tonumber(ARGV[2]))"

instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2400, 12, 31), timezones=st.just(UTC)
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(at=instants, period=st.sampled_from(["day", "month", "total"]))
async def test_lua_and_python_name_the_same_bucket(
    redis: redis_asyncio.Redis, at: datetime, period: str
) -> None:
    now_ms = int(at.timestamp() * 1000)
    named = await redis.eval(SCRIPT, 0, period, now_ms)
    assert named.decode() == spend_bucket(period, at)


@given(at=instants, period=st.sampled_from(["day", "month"]))
def test_a_bucket_starts_where_its_name_changes(at: datetime, period: str) -> None:
    start = spend_bucket_start(period, at)
    assert start <= at
    assert spend_bucket(period, start) == spend_bucket(period, at)
    assert spend_bucket(period, start - timedelta(microseconds=1000)) != spend_bucket(period, at)
