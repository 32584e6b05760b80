"""The Redis side: the per-shard usage streams `usage:{sS}` and their one consumer group.

The group (`keyspace.USAGE_CONSUMER_GROUP`) is created on all 1024 streams at id 0 with
MKSTREAM, so events appended before any worker ever ran are not skipped (BUSYGROUP: it
exists). One XREADGROUP names all 1024 streams with `>`; everything else that touches every
stream goes out in pipelines of 256 streams (`common.redis_store.pipelined`). An entry is
acknowledged (XACK, then XDEL: its data is in Postgres) only after its batch committed, and a
malformed one is copied to the dead-letter stream first, with `_stream`, `_id` and `_error`.

On a Redis Cluster (REDIS_CLUSTER) the 1,024 streams are 1,024 slots, and a command naming
keys of two slots is refused, so there is no one XREADGROUP: `read_new` and `claim_pending`
send one pipeline per primary, of one non-blocking single-stream command per stream it holds,
to all primaries at once (`per_node`). Each primary's pipeline stands alone, so a primary that
is down costs only its own streams: what the others delivered is still returned and
processed, never left pending for XAUTOCLAIM. With nothing anywhere, `read_new` sleeps
USAGE_READ_BLOCK_MS instead of blocking (the poll interval when idle).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common import keyspace
from common.redis_store import RedisClient, pipelined

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


# A node's pipeline is tried twice: when one primary cannot be reached, redis-py resets the
# cluster's connections, and the next node's pipeline can fail once on a closed connection.
NODE_ATTEMPTS = 2


def is_nogroup(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith("NOGROUP")


async def create_groups(redis: RedisClient) -> None:
    """The consumer group on every stream (and the stream); idempotent. On a cluster a
    primary that cannot be reached is skipped (logged): its streams keep the groups they
    have, and a primary that comes back without them answers NOGROUP to the next read,
    which recreates them; it raises only if no primary could be reached."""

    def create(pipe: Any, stream: str) -> None:
        pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)

    unreachable: list[BaseException] = []
    async for _, replies in pipelined(redis, STREAMS, create, key=_itself):
        for reply in replies:
            if not isinstance(reply, Exception) or str(reply).startswith("BUSYGROUP"):
                continue
            if isinstance(redis, RedisCluster) and _is_unreachable(reply):
                unreachable.append(reply)
                continue
            raise reply
    if len(unreachable) == len(STREAMS):
        raise unreachable[0]
    if unreachable:
        logger.warning(
            "usage consumer groups not checked on %d of %d streams (primary unreachable)",
            len(unreachable), len(STREAMS), extra={"event": "usage"},
        )  # fmt: skip


async def _recreate_groups(redis: RedisCluster, streams: list[str]) -> None:
    logger.warning(
        "usage consumer group missing on %d streams; recreating it", len(streams),
        extra={"event": "usage"},
    )  # fmt: skip

    def create(pipe: Any, stream: str) -> None:
        pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)

    await per_node(redis, streams, create)  # BUSYGROUP: another worker was first


def _itself(stream: str) -> str:
    return stream


def _is_unreachable(error: BaseException) -> bool:
    return isinstance(error, (RedisConnectionError, RedisTimeoutError, OSError))


async def read_new(
    redis: RedisClient, consumer: str, *, count: int, block_ms: int | None
) -> list[StreamEntry]:
    """Entries never delivered to any consumer, from all streams (COUNT per stream)."""
    if isinstance(redis, RedisCluster):
        return await _read_new_per_node(redis, consumer, count=count, block_ms=block_ms)
    reply = await redis.xreadgroup(
        GROUP, consumer, dict.fromkeys(STREAMS, ">"), count=count, block=block_ms
    )
    return _entries_of_read(reply)


def _entries_of_read(reply: Any) -> list[StreamEntry]:
    entries: list[StreamEntry] = []
    if not reply:
        return entries
    pairs = reply.items() if isinstance(reply, dict) else reply
    for stream, items in pairs:
        # RESP3 wraps each stream's entries in one more list.
        nested = isinstance(items, list) and items and isinstance(items[0], list)
        entries.extend(_entries_of(_text(stream), items[0] if nested else items))
    return entries


async def per_node(
    redis: RedisCluster, keys: Sequence[str], queue: Callable[[Any, str], object]
) -> list[tuple[list[str], list[Any]]]:
    """`queue(pipe, key)` for every key, in one pipeline per primary (the keys it holds), one
    primary after another; each primary's keys with their replies, a failed command's error as
    its reply, and a primary that cannot be reached giving its error as every reply."""
    await redis.initialize()  # the slot map (a no-op once known)
    by_node: dict[str, list[str]] = {}
    for key in keys:
        node = redis.get_node_from_key(key)  # None: no primary holds the slot (it fails)
        by_node.setdefault("" if node is None else node.name, []).append(key)

    async def one(node_keys: list[str]) -> tuple[list[str], list[Any]]:
        failure: BaseException | None = None
        for _ in range(NODE_ATTEMPTS):
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for key in node_keys:
                        queue(pipe, key)
                    return node_keys, await pipe.execute(raise_on_error=False)
            # AttributeError: redis-py resets the cluster's connections when one node cannot
            # be reached, and a pipeline in flight on another node then fails inside it.
            except (RedisError, RedisClusterException, OSError, AttributeError) as error:
                failure = error
        return node_keys, [failure] * len(node_keys)

    # One primary after the other, not all at once: when a node cannot be reached redis-py
    # resets the cluster's connections, and the pipelines in flight on the other nodes then
    # fail too, so one primary down stopped every stream (tests/control_plane/
    # test_worker_primary_loss.py). A pipeline costs well under a millisecond here.
    return [await one(node_keys) for node_keys in by_node.values()]


def _first_failure(errors: list[BaseException]) -> BaseException:
    """The error to raise when nothing was read: NOGROUP first (the ingester recreates)."""
    return next((error for error in errors if is_nogroup(error)), errors[0])


async def _read_new_per_node(
    redis: RedisCluster, consumer: str, *, count: int, block_ms: int | None
) -> list[StreamEntry]:
    def queue(pipe: Any, stream: str) -> None:
        # Sent to the stream's primary by name: for XREADGROUP (keys found by the server)
        # redis-py otherwise asks one fixed node COMMAND GETKEYS first, and with that node
        # down no stream could be read at all.
        pipe.execute_command("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count,
                             "STREAMS", stream, ">",
                             target_nodes=redis.get_node_from_key(stream))  # fmt: skip

    entries: list[StreamEntry] = []
    errors: list[BaseException] = []
    lost_groups: list[str] = []
    for streams, replies in await per_node(redis, STREAMS, queue):
        for stream, reply in zip(streams, replies, strict=True):
            if isinstance(reply, BaseException):
                errors.append(reply)
                if is_nogroup(reply):
                    lost_groups.append(stream)
            else:
                entries.extend(_entries_of_read(reply))
    if lost_groups and entries:
        # A primary came back empty (no persistence) while the others have entries: make
        # its groups now, or its streams would wait for a poll that finds nothing anywhere.
        await _recreate_groups(redis, lost_groups)
    # Raise (the ingester retries, or recreates lost groups on NOGROUP) only when no stream
    # answered or a group is missing; a primary that is down costs only its own streams.
    if errors and not entries and (lost_groups or len(errors) == len(STREAMS)):
        raise _first_failure(errors)
    if errors:
        logger.warning(
            "%d of %d usage streams could not be read: %s",
            len(errors),
            len(STREAMS),
            type(errors[0]).__name__,
            extra={"event": "usage"},
        )
    if not entries and block_ms:
        await asyncio.sleep(block_ms / 1000)  # nothing anywhere: poll again later
    return entries


async def claim_pending(
    redis: RedisClient,
    consumer: str,
    cursors: dict[str, str | bytes],
    *,
    min_idle_ms: int,
    count: int,
) -> tuple[list[StreamEntry], dict[str, str | bytes]]:
    """One XAUTOCLAIM round over the streams in `cursors` (stream -> start id): the entries
    taken over, and the cursors of the streams that have more. On a cluster a primary that
    cannot be reached is skipped for this round (its entries stay pending for the next
    claim run), unless every stream failed."""

    def queue(pipe: Any, stream: str) -> None:
        pipe.xautoclaim(stream, GROUP, consumer, min_idle_ms, start_id=cursors[stream], count=count)

    claimed: list[StreamEntry] = []
    next_cursors: dict[str, str | bytes] = {}
    errors: list[BaseException] = []
    if isinstance(redis, RedisCluster):
        rounds = await per_node(redis, list(cursors), queue)
    else:
        rounds = [(list(chunk), replies) async for chunk, replies in pipelined(
            redis, list(cursors), queue)]  # fmt: skip
    for chunk, replies in rounds:
        for stream, reply in zip(chunk, replies, strict=True):
            if isinstance(reply, BaseException):
                if not is_nogroup(reply):  # no group yet: nothing can be pending there
                    errors.append(reply)
                continue
            cursor, items = reply[0], reply[1]
            claimed.extend(_entries_of(stream, items))
            if cursor not in (b"0-0", "0-0"):
                next_cursors[stream] = cursor
    if errors and (not isinstance(redis, RedisCluster) or len(errors) == len(cursors)):
        raise errors[0]
    return claimed, next_cursors


async def forget_idle_consumers(redis: RedisClient, keep: str, idle_ms: int) -> int:
    """Remove consumers (but `keep`) idle longer than `idle_ms` with nothing pending: dead
    processes. Returns how many (stream, consumer) pairs went."""
    removed = 0
    async for chunk, replies in pipelined(
        redis, STREAMS, lambda pipe, stream: pipe.xinfo_consumers(stream, GROUP), key=_itself
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


async def stream_lag(redis: RedisClient) -> StreamLag:
    """Pending + undelivered entries over all streams."""
    lag = pending = 0
    async for chunk, replies in pipelined(redis, STREAMS, _queue_lag_probe, key=_itself):
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
    redis: RedisClient, rejected: Sequence[tuple[StreamEntry, str]], *, maxlen: int
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


async def acknowledge(redis: RedisClient, entries: Iterable[StreamEntry]) -> None:
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
