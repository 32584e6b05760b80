"""A minimal Redis client for the hot path's two scripts (admit.lua, commit.lua).

Why not redis-py here: measured on the load harness, redis-py spends ~90-110 µs of CPU per
admit + commit pair (connection checkout, command packing, response parsing in layers);
this client spends ~20 µs. Everything else in the project keeps using redis-py.

How it works: a few long-lived connections per process, each an asyncio protocol with a
hiredis reply parser. Commands are *auto-pipelined*: those issued in the same event-loop
iteration go out in one write, and Redis answers in order, so each connection keeps a FIFO of
waiting futures. A command for an idle connection (nothing in flight, nothing queued) goes out
at once instead: with one client there is no one to share the write with, and waiting for the
iteration's end put a loop turn (and, for the commit, the client's next request: parsed and
admitted first) between the answer and its commit. A watchdog fails a connection whose oldest
command waits longer than the timeout, so no request hangs on a dead Redis; the next call
reconnects. EVALSHA falls back to EVAL (which also loads the script) on NOSCRIPT, e.g. after a
Redis restart.

Errors are redis-py's exception classes, so callers handle both clients the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from common.redis_store import read_lua_sources

Arg = str | int | bytes


def encode_command(*parts: Arg) -> bytes:
    """RESP array of bulk strings (hiredis packs it in C: a third of the pure Python cost)."""
    # hiredis's stub types the tuple as one element long; any length is packed.
    packed: bytes = hiredis.pack_command(parts)  # type: ignore[arg-type]
    return packed


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiters: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._pending: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._flush_scheduled = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            future, _ = self._waiters.popleft()
            if future.done():
                continue  # its caller gave up (cancelled); the reply is dropped
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ResponseError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = RedisConnectionError("Connection to Redis lost.")
        while self._waiters:
            future, _ = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.closed or self._transport is None:
            raise RedisConnectionError("Connection to Redis is closed.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        idle = not self._waiters and not self._pending
        self._waiters.append((future, time.monotonic()))
        if idle:
            self._transport.write(command)
            return future
        self._pending.append(command)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is not None and not self.closed and self._pending:
            self._transport.write(b"".join(self._pending))
        self._pending.clear()

    def oldest_wait(self, now: float) -> float:
        return now - self._waiters[0][1] if self._waiters else 0.0

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails every waiter


class HotRedis:
    """A tiny pool of auto-pipelined connections. Create and close it inside one event loop."""

    def __init__(self, url: str, *, timeout_s: float, connections: int = 2) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError("REDIS_URL must be redis:// or rediss://")
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 6379
        self._username = unquote(parsed.username) if parsed.username else None
        self._password = unquote(parsed.password) if parsed.password else None
        self._db = int(parsed.path.lstrip("/") or 0)
        self._ssl = ssl.create_default_context() if parsed.scheme == "rediss" else None
        self._timeout_s = timeout_s
        self._slots: list[_Connection | None] = [None] * connections
        self._locks = [asyncio.Lock() for _ in range(connections)]
        self._next = 0
        self._watchdog: asyncio.Task[None] | None = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout_s):
                _, connection = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl
                )
                if self._password is not None:
                    auth: list[Arg] = ["AUTH", self._password]
                    if self._username:
                        auth.insert(1, self._username)
                    await connection.send(encode_command(*auth))
                if self._db:
                    await connection.send(encode_command("SELECT", self._db))
        except (OSError, TimeoutError) as error:
            raise RedisConnectionError(f"Cannot connect to Redis: {type(error).__name__}") from None
        return connection

    def _take_slot(self) -> tuple[int, _Connection | None]:
        """The next slot, round robin, and its connection if it is open."""
        index = self._next
        self._next = (index + 1) % len(self._slots)
        connection = self._slots[index]
        return index, connection if connection is not None and not connection.closed else None

    async def _connection(self) -> _Connection:
        index, connection = self._take_slot()
        if connection is not None:
            return connection
        async with self._locks[index]:
            connection = self._slots[index]
            if connection is None or connection.closed:
                connection = await self._connect()
                self._slots[index] = connection
                if self._watchdog is None:
                    self._watchdog = asyncio.create_task(self._watch())
        return connection

    async def execute(self, *parts: Arg) -> Any:
        connection = await self._connection()
        return await connection.send(encode_command(*parts))

    async def execute_on(self, key: Arg, *parts: Arg) -> Any:
        """`execute`, for a command on `key`: on one node, every key is here (HotCluster
        routes by it)."""
        connection = await self._connection()
        return await connection.send(encode_command(*parts))

    def send_on(self, key: Arg, *parts: Arg) -> Awaitable[Any]:
        """`execute_on`, the command sent before this returns (not when first awaited) while
        a connection is open: what every script call goes through (HotScripts), so a reply
        awaited later, or by another task, was asked for at once. Raises nothing itself; a
        closed connection reconnects when the result is awaited."""
        index, connection = self._take_slot()
        if connection is None:
            self._next = index  # `execute_on` takes this slot again: connects it
            return self.execute_on(key, *parts)
        return connection.send(encode_command(*parts))

    def send_now(self, key: Arg, *parts: Arg) -> asyncio.Future[Any] | None:
        """The command sent before this returns, and its reply's future; None (nothing sent)
        when no connection is open: `send_on` or `execute_on` then, which connect."""
        index, connection = self._take_slot()
        if connection is None:
            self._next = index  # the caller's `send_on` next takes this slot: connects it
            return None
        return connection.send(encode_command(*parts))

    async def execute_asking(self, *parts: Arg) -> Any:
        """ASKING, then `parts`, back to back on one connection: how a Redis Cluster node
        takes a command on a slot being migrated to it (gateway/hot_cluster.py)."""
        connection = await self._connection()
        asking = connection.send(encode_command("ASKING"))
        reply = connection.send(encode_command(*parts))
        _, result = await asyncio.gather(asking, reply)
        return result

    async def _watch(self) -> None:
        """Fail connections whose oldest command has waited past the timeout."""
        interval = min(0.1, self._timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in self._slots:
                if connection is not None and connection.oldest_wait(now) > self._timeout_s:
                    connection.abort()

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for connection in self._slots:
            if connection is not None:
                connection.abort()


ScriptCall = Callable[..., Awaitable[Any]]


class HotClient(Protocol):
    """`HotRedis`, or `HotCluster` (gateway/hot_cluster.py), which routes by `key`."""

    async def execute_on(self, key: Arg, *parts: Arg) -> Any: ...

    def send_on(self, key: Arg, *parts: Arg) -> Awaitable[Any]: ...

    def send_now(self, key: Arg, *parts: Arg) -> asyncio.Future[Any] | None: ...


class HotScripts:
    """The project's Lua scripts over `HotRedis` or `HotCluster`, used like `LuaScripts`:
    `scripts[name]`. Each runs where its first key is (every script's keys share one slot)."""

    def __init__(self, client: HotClient) -> None:
        self._client = client
        self._scripts = {
            name: (hashlib.sha1(source.encode()).hexdigest(), source.encode())  # noqa: S324
            for name, source in read_lua_sources().items()
        }

    def __getitem__(self, name: str) -> ScriptCall:
        """`scripts[name](keys=, args=)`: EVALSHA sent at once where the client can
        (`send_on`), its reply (or EVAL's, after NOSCRIPT) when the result is awaited."""
        sha, source = self._scripts[name]
        client = self._client

        def run(*, keys: Sequence[Arg], args: Sequence[Arg]) -> Awaitable[Any]:
            sent = client.send_on(keys[0], "EVALSHA", sha, len(keys), *keys, *args)
            return _reply_or_eval(client, sent, source, keys, args)

        return run

    def send_now(
        self, name: str, *, keys: Sequence[Arg], args: Sequence[Arg]
    ) -> asyncio.Future[Any] | None:
        """EVALSHA sent before this returns, and its reply's future (a NOSCRIPT error is the
        caller's to answer, with `scripts[name]`); None, nothing sent, when it cannot go out
        at once (no connection open; a Redis Cluster, whose calls may be redirected)."""
        sha, _ = self._scripts[name]
        return self._client.send_now(keys[0], "EVALSHA", sha, len(keys), *keys, *args)


async def _reply_or_eval(
    client: HotClient, sent: Awaitable[Any], source: bytes, keys: Sequence[Arg],
    args: Sequence[Arg],
) -> Any:  # fmt: skip
    try:
        return await sent
    except ResponseError as error:
        if not str(error).startswith("NOSCRIPT"):
            raise
    # EVAL also loads the script, on the node that said NOSCRIPT.
    return await client.execute_on(keys[0], "EVAL", source, len(keys), *keys, *args)


__all__ = ["HotClient", "HotRedis", "HotScripts"]
