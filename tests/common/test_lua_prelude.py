"""The Lua prelude: what the scripts share is written once and holds for every script.

`common/lua/prelude.lua` (server time, the reservation format, the usage event as XADD
arguments) is prepended to every script at load time, after a generated line listing the
usage event's fields from `UsageEvent`; a script cannot append an event that lacks one.
"""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis_asyncio
from redis.exceptions import ResponseError

from common.redis_store import PRELUDE, lua_prelude, read_lua_sources
from common.usage_events import USAGE_EVENT_FIELDS, UsageEvent


def test_every_script_starts_with_the_prelude_and_the_event_fields() -> None:
    sources = read_lua_sources()
    assert PRELUDE.removesuffix(".lua") not in sources  # not a script of its own
    assert {"admit", "commit", "reap", "fill_record"} <= set(sources)
    listed = ", ".join(f'"{name}"' for name in USAGE_EVENT_FIELDS)
    for name, source in sources.items():
        assert source.startswith(f"local USAGE_EVENT_FIELDS = {{{listed}}}\n"), name
        assert source.startswith(lua_prelude()), name
    assert USAGE_EVENT_FIELDS[0] == "call_id"
    assert set(USAGE_EVENT_FIELDS) == set(UsageEvent.__dataclass_fields__)


async def _run(redis: redis_asyncio.Redis, body: str, keys: list[str]) -> object:
    return await redis.eval(lua_prelude() + body, len(keys), *keys)  # type: ignore[misc]


async def test_an_event_missing_a_field_fails_before_anything_is_written(
    redis: redis_asyncio.Redis,
) -> None:
    marker = f"test:prelude:{uuid.uuid4().hex}"
    body = """
local args = usage_event_args({call_id = "c1", user_id = "u1"})
redis.call("SET", KEYS[1], "written")
return args
"""
    with pytest.raises(ResponseError, match="usage event without request_id"):
        await _run(redis, body, [marker])
    assert await redis.exists(marker) == 0


async def test_a_complete_event_becomes_its_fields_in_order(redis: redis_asyncio.Redis) -> None:
    values = ", ".join(f'{name} = "v-{name}"' for name in USAGE_EVENT_FIELDS)
    reply = await _run(redis, f"return usage_event_args({{{values}}})", [])
    assert isinstance(reply, list)
    assert [item.decode() for item in reply[::2]] == list(USAGE_EVENT_FIELDS)
    assert [item.decode() for item in reply[1::2]] == [f"v-{n}" for n in USAGE_EVENT_FIELDS]


async def test_a_reservation_reads_back_what_was_written(redis: redis_asyncio.Redis) -> None:
    body = """
local text = encode_reservation({user_id = "u-1", agent_id = "a-2", agent_version = 7,
  charge = "quota", units = 3, key_id = "k-4", admitted_ms = 1733000000123,
  request_id = "client-5"})
local r = decode_reservation(text)
return {text, r.user_id, r.agent_id, r.agent_version, r.charge, r.units, r.key_id,
        tostring(r.admitted_ms == 1733000000123), r.request_id}
"""
    reply = await _run(redis, body, [])
    assert isinstance(reply, list)
    text, *fields = reply
    assert text == b"u-1|a-2|7|quota|3|k-4|1733000000123|client-5"
    assert fields == [b"u-1", b"a-2", b"7", b"quota", 3, b"k-4", b"true", b"client-5"]


async def test_a_reservation_from_before_request_ids_reads_back_an_empty_one(
    redis: redis_asyncio.Redis,
) -> None:
    body = """
local r = decode_reservation("u-1|a-2|7|quota|3|k-4|1733000000123")
return {r.key_id, tostring(r.admitted_ms == 1733000000123), r.request_id}
"""
    assert await _run(redis, body, []) == [b"k-4", b"true", b""]


async def test_now_ms_is_the_servers_clock(redis: redis_asyncio.Redis) -> None:
    seconds, micros = await redis.time()
    now = await _run(redis, "return now_ms()", [])
    assert isinstance(now, int)
    assert abs(now - (seconds * 1000 + micros // 1000)) < 5_000
