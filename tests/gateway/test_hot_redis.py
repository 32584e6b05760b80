"""The hot path's minimal Redis client: replies in order under concurrency, script reload on
NOSCRIPT, error replies, database selection, and no hang when Redis stops answering."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as redis_asyncio
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from gateway.hot_redis import HotRedis, HotScripts, encode_command
from tests.processes import Servers


@pytest.fixture
async def hot(servers: Servers) -> AsyncIterator[HotRedis]:
    client = HotRedis(servers.redis_url, timeout_s=2)
    yield client
    await client.aclose()


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5))
def test_commands_are_encoded_as_resp_bulk_arrays(parts: list[bytes]) -> None:
    encoded = encode_command(*parts)
    expected = b"*%d\r\n" % len(parts)
    for part in parts:
        expected += b"$%d\r\n" % len(part) + part + b"\r\n"
    assert encoded == expected


async def test_concurrent_commands_get_their_own_replies(hot: HotRedis) -> None:
    values = [f"value-{index}" for index in range(500)]
    replies = await asyncio.gather(*(hot.execute("ECHO", value) for value in values))
    assert replies == [value.encode() for value in values]


async def test_commands_go_out_before_the_event_loop_turns(hot: HotRedis, servers: Servers) -> None:
    """A script call (and `send_on`) on an open, idle connection has sent its command when it
    returns: the commit goes out as the answer ends, not at the loop's next turn, when the
    client's next request may already be in and would be parsed and admitted first. A blocking
    client watches Redis, so this loop cannot turn meanwhile."""
    fill = HotScripts(hot)["fill_record"]
    await fill(keys=["hot:loaded"], args=[60, "status", "ok"])  # the script loaded (EVAL)
    for _ in range(2):
        await hot.execute("PING")  # both connections open
    watcher = redis.Redis.from_url(servers.redis_url)
    try:
        script = fill(keys=["hot:now"], args=[60, "status", "sent"])
        direct = hot.send_on("hot:now-direct", "SET", "hot:now-direct", "sent")
        deadline = time.monotonic() + 5
        while watcher.hget("hot:now", "status") is None or watcher.get("hot:now-direct") is None:
            assert time.monotonic() < deadline, "the commands waited for the event loop"
            time.sleep(0.01)  # noqa: ASYNC251 - blocking on purpose: the loop must not turn
    finally:
        watcher.close()
    assert await script == 1
    assert await direct == b"OK"


async def test_send_on_connects_and_uses_every_connection(servers: Servers) -> None:
    """Before a connection is open, `send_on` opens it when awaited, in its own slot: the
    commands then go round the whole pool, not all through the first connection opened."""
    client = HotRedis(servers.redis_url, timeout_s=2, connections=2)
    try:
        ids = {await client.send_on("any", "CLIENT", "ID") for _ in range(6)}
    finally:
        await client.aclose()
    assert len(ids) == 2


async def test_error_replies_raise_response_error(hot: HotRedis) -> None:
    with pytest.raises(ResponseError, match="unknown command"):
        await hot.execute("NOT-A-COMMAND")
    assert await hot.execute("PING") == b"PONG"  # the connection is still in step


async def test_scripts_reload_after_script_flush(
    hot: HotRedis, redis_client: redis_asyncio.Redis
) -> None:
    scripts = HotScripts(hot)
    fill = scripts["fill_record"]
    assert await fill(keys=["hot:record"], args=[60, "status", "ok"]) == 1
    await redis_client.script_flush()  # what a Redis restart does to loaded scripts
    assert await fill(keys=["hot:record"], args=[60, "status", "ok"]) == 0
    assert await redis_client.hget("hot:record", "status") == b"ok"


async def test_database_number_and_password_in_the_url_are_used(
    servers: Servers, redis_client: redis_asyncio.Redis
) -> None:
    other_db = servers.redis_url.rsplit("/", 1)[0] + "/3"
    client = HotRedis(other_db, timeout_s=2)
    try:
        await client.execute("SET", "hot:db3", "yes")
    finally:
        await client.aclose()
    assert await redis_client.get("hot:db3") is None  # not in db 0
    db3 = redis_asyncio.Redis.from_url(other_db)
    try:
        assert await db3.get("hot:db3") == b"yes"
    finally:
        await db3.aclose()


async def test_a_redis_that_stops_answering_fails_calls_within_the_timeout() -> None:
    handlers: list[asyncio.Task[None] | None] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())
        try:
            await reader.read(1 << 16)  # take the command, never answer
            await asyncio.sleep(30)
        finally:
            writer.close()  # else it is collected after the loop closed: a ResourceWarning

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HotRedis(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(RedisError):
            await client.execute("PING")
        assert time.monotonic() - started < 10  # bounded; the exact bound is the watchdog's
    finally:
        await client.aclose()
        for handler in handlers:
            if handler is not None:
                handler.cancel()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def test_nothing_listening_is_a_connection_error() -> None:
    from devstack.servers import free_port

    client = HotRedis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    with pytest.raises(RedisConnectionError):
        await client.execute("PING")
    await client.aclose()


def test_only_redis_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="redis://"):
        HotRedis("http://127.0.0.1:1", timeout_s=1)
