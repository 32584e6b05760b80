"""The Redis side: the per-shard usage streams `usage:{sS}` and their one consumer group.

The group (`keyspace.USAGE_CONSUMER_GROUP`) is created on all 1024 streams at id 0 with
MKSTREAM, so events appended before any worker ever ran are not skipped (BUSYGROUP: it
exists). One XREADGROUP names all 1024 streams with `>`; everything else that touches every
stream goes out in pipelines of 256 streams (`common.redis_store.pipelined`). An entry is
acknowledged (XACK, then XDEL: its data is in Postgres) only after its batch committed, and a
malformed one is copied to the dead-letter stream first, with `_stream`, `_id` and `_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import ResponseError

from common import keyspace
from common.redis_store import pipelined

logger = logging.getLogger("agentlink.worker.usage")

DEAD_LETTER_STREAM = keyspace.USAGE_DEAD_LETTER_STREAM
GROUP = keyspace.USAGE_CONSUMER_GROUP
STREAMS: tuple[str, ...] = tuple(keyspace.all_usage_streams())


@dataclass(frozen=True, slots=True)
class StreamEntry:
    stream: str
    entry_id: bytes
    fields: dict[bytes, bytes] | None  # None: the entry was deleted while pending


@dataclass(frozen=True, slots=True)
class StreamLag:
    lag: int  # pending + undelivered, all streams
    pending: int  # delivered, not acknowledged


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _entries_of(stream: str, items: Iterable[Any]) -> list[StreamEntry]:
    entries: list[StreamEntry] = []
    for entry_id, raw in items:
        raw_id = entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()
        fields = raw if raw is None or isinstance(raw, dict) else dict(raw)
        entries.append(StreamEntry(stream, raw_id, fields))
    return entries


def is_nogroup(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith("NOGROUP")


async def create_groups(redis: redis_asyncio.Redis) -> None:
    """The consumer group on every stream (and the stream); idempotent."""

    def create(pipe: Any, stream: str) -> None:
        pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)

    async for _, replies in pipelined(redis, STREAMS, create):
        for reply in replies:
            if isinstance(reply, Exception) and not str(reply).startswith("BUSYGROUP"):
                raise reply


async def read_new(
    redis: redis_asyncio.Redis, consumer: str, *, count: int, block_ms: int | None
) -> list[StreamEntry]:
    """Entries never delivered to any consumer, from all streams (COUNT per stream)."""
    reply = await redis.xreadgroup(
        GROUP, consumer, dict.fromkeys(STREAMS, ">"), count=count, block=block_ms
    )
    entries: list[StreamEntry] = []
    if not reply:
        return entries
    pairs = reply.items() if isinstance(reply, dict) else reply
    for stream, items in pairs:
        # RESP3 wraps each stream's entries in one more list.
        nested = isinstance(items, list) and items and isinstance(items[0], list)
        entries.extend(_entries_of(_text(stream), items[0] if nested else items))
    return entries


async def claim_pending(
    redis: redis_asyncio.Redis,
    consumer: str,
    cursors: dict[str, str | bytes],
    *,
    min_idle_ms: int,
    count: int,
) -> tuple[list[StreamEntry], dict[str, str | bytes]]:
    """One XAUTOCLAIM round over the streams in `cursors` (stream -> start id): the entries
    taken over, and the cursors of the streams that have more."""
    claimed: list[StreamEntry] = []
    next_cursors: dict[str, str | bytes] = {}
    async for chunk, replies in pipelined(
        redis,
        list(cursors),
        lambda pipe, stream: pipe.xautoclaim(
            stream, GROUP, consumer, min_idle_ms, start_id=cursors[stream], count=count
        ),
    ):
        for stream, reply in zip(chunk, replies, strict=True):
            if isinstance(reply, Exception):
                if is_nogroup(reply):
                    continue  # no group yet: nothing can be pending there
                raise reply
            cursor, items = reply[0], reply[1]
            claimed.extend(_entries_of(stream, items))
            if cursor not in (b"0-0", "0-0"):
                next_cursors[stream] = cursor
    return claimed, next_cursors


async def forget_idle_consumers(redis: redis_asyncio.Redis, keep: str, idle_ms: int) -> int:
    """Remove consumers (but `keep`) idle longer than `idle_ms` with nothing pending: dead
    processes. Returns how many (stream, consumer) pairs went."""
    removed = 0
    async for chunk, replies in pipelined(
        redis, STREAMS, lambda pipe, stream: pipe.xinfo_consumers(stream, GROUP)
    ):
        doomed: list[tuple[str, str]] = []
        for stream, reply in zip(chunk, replies, strict=True):
            if isinstance(reply, Exception):
                continue
            for consumer in reply:
                name = _text(consumer["name"])
                idle = int(consumer["pending"]) == 0 and int(consumer["idle"]) > idle_ms
                if name != keep and idle:
                    doomed.append((stream, name))
        if doomed:
            async with redis.pipeline(transaction=False) as pipe:
                for stream, name in doomed:
                    pipe.xgroup_delconsumer(stream, GROUP, name)
                await pipe.execute(raise_on_error=False)
            removed += len(doomed)
    return removed


def _queue_lag_probe(pipe: Any, stream: str) -> None:
    pipe.xinfo_groups(stream)
    pipe.xlen(stream)


async def stream_lag(redis: redis_asyncio.Redis) -> StreamLag:
    """Pending + undelivered entries over all streams."""
    lag = pending = 0
    async for chunk, replies in pipelined(redis, STREAMS, _queue_lag_probe):
        for index in range(len(chunk)):
            groups, length = replies[2 * index], replies[2 * index + 1]
            stream_length = 0 if isinstance(length, Exception) else int(length)
            group = None
            if not isinstance(groups, Exception):
                group = next((g for g in groups if _text(g["name"]) == GROUP), None)
            if group is None:
                lag += stream_length  # no group yet: everything is undelivered
                continue
            group_pending = int(group["pending"])
            pending += group_pending
            undelivered = group.get("lag")
            if undelivered is None:
                # Redis cannot tell (deleted entries in the range): every entry still in the
                # stream is pending or undelivered, since acked ones are deleted.
                lag += max(stream_length, group_pending)
            else:
                lag += group_pending + int(undelivered)
    return StreamLag(lag, pending)


async def dead_letter(
    redis: redis_asyncio.Redis, rejected: Sequence[tuple[StreamEntry, str]], *, maxlen: int
) -> None:
    """Copy refused entries, with their stream, id and the reason, to the dead-letter stream."""
    async with redis.pipeline(transaction=False) as pipe:
        for entry, reason in rejected:
            fields: dict[bytes, bytes] = dict(entry.fields or {})
            fields[b"_stream"] = entry.stream.encode()
            fields[b"_id"] = entry.entry_id
            fields[b"_error"] = reason.encode()
            pipe.xadd(DEAD_LETTER_STREAM, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
    for entry, reason in rejected:
        logger.error(
            "malformed usage entry %s %s moved to %s: %s",
            entry.stream,
            entry.entry_id.decode(),
            DEAD_LETTER_STREAM,
            reason,
            extra={"event": "usage_dead_letter"},
        )


async def acknowledge(redis: redis_asyncio.Redis, entries: Iterable[StreamEntry]) -> None:
    """XACK, then XDEL: the entry's data is in Postgres, Redis need not keep it."""
    by_stream: dict[str, list[bytes]] = {}
    for entry in entries:
        by_stream.setdefault(entry.stream, []).append(entry.entry_id)
    if not by_stream:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for stream, ids in by_stream.items():
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
        await pipe.execute()
