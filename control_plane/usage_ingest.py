"""Usage ingestion: the worker end of the per-shard usage streams `usage:{sS}`.

The gateway's commit script and the worker's reaper append one usage event per call to the
call's shard stream (`common/usage_events.py`). This module moves them into Postgres:

1. **Read.** One consumer group, `keyspace.USAGE_CONSUMER_GROUP`, on all 1024 streams (created
   at id 0 with MKSTREAM, so events appended before any worker ever ran are not skipped; a
   BUSYGROUP reply means it exists). Each process is one consumer, named `hostname-pid`. One
   XREADGROUP names all 1024 streams with `>`, a modest COUNT per stream and BLOCK ~1 s.
2. **Parse.** Every entry becomes a `UsageEvent` and is checked against what `call_logs` will
   accept (ids are UUIDs, status and charge are known values, numbers are in range, a call
   that is not billable charges no units). A malformed entry is logged, copied to the
   dead-letter stream `usage:dead` (its fields plus `_stream`, `_id`, `_error`) and
   acknowledged, so one bad entry can never block its stream or poison a batch forever.
3. **Write.** A batch is ONE SQL statement, hence one transaction: the events go in as arrays
   through `unnest`, `INSERT INTO call_logs ... ON CONFLICT (request_id, created_at) DO
   NOTHING RETURNING ...` yields only the rows that are new, and data-modifying CTEs apply
   exactly those to the aggregates: `agents.total_calls` (+ billable calls, trials included)
   and `total_revenue` (+ cost), `creator_profiles.pending_earnings` (+ cost, gross: the
   settlement job takes the platform fee; the profile row is created if missing),
   `api_keys.last_used_at` (the newest call per key),
   `quotas.used_quota` (+ units: Postgres catches up with Redis' live balance) and
   `trial_usage.calls_used` (+ billable trial calls, capped at 3). `call_logs.request_id` is
   the event's `call_id` (unique per call); the client's X-Request-ID goes to the nullable
   `client_request_id`. `cost_usd` is the served version's `price_per_call` for a billable
   call charged to quota, 0 for trial and non-billable calls.
4. **Acknowledge.** XACK and XDEL only after that statement committed. A crash in between
   redelivers the entries; their rows already exist (the event carries its own timestamp, so
   the conflict key is the same), nothing is inserted and no aggregate moves twice.

Failures. A month without a `call_logs` partition: `ensure_call_log_partitions` for that month,
then the same batch again. A deadlock or serialization failure: retried at once. A batch that
Postgres refuses for its data (which the parse step should have caught): split in halves until
the offending event is alone, and that one is dead-lettered. Anything else (Postgres or Redis
down): nothing is acknowledged, the loop retries the same batch with backoff.

Entries a consumer read and never acknowledged (it died, or its batch kept failing) stay in
the group's pending list; `claim_stale` (run periodically) takes over every entry idle longer
than `USAGE_CLAIM_MIN_IDLE_S` with XAUTOCLAIM and processes it the same way, and removes
consumers that have been idle for long with nothing pending.

Throughput: `loadtests/ingest_throughput.py` measures it; the loop logs its rate once a minute
and the worker exports counters and a batch-time histogram (`control_plane/worker_metrics.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError, ResponseError

from common import keyspace
from common.usage_events import MalformedUsageEvent, UsageEvent
from control_plane.settings import UsageIngestSettings
from control_plane.worker_metrics import WorkerMetrics

logger = logging.getLogger("agentlink.worker.usage")

DEAD_LETTER_STREAM = "usage:dead"
GROUP = keyspace.USAGE_CONSUMER_GROUP
STREAMS: tuple[str, ...] = tuple(keyspace.all_usage_streams())

_STREAMS_PER_PIPELINE = 256
_STATUSES = frozenset({"success", "error", "timeout", "blocked", "cancelled"})
_BILLABLE_STATUSES = frozenset({"success", "cancelled"})
_CHARGES = frozenset({"trial", "quota"})
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# 2000-01-01 .. 2200-01-01 UTC in ms: anything outside is a broken clock or a forged entry.
_MIN_TS_MS = 946_684_800_000
_MAX_TS_MS = 7_258_118_400_000
_MAX_TEXT = 128
_MAX_ERROR_CODE = 64
_TRIAL_CAP = 3
_TRANSACTION_RETRIES = 4
_BATCH_ATTEMPTS = 5  # 0.5 + 1 + 2 + 4 s of backoff between them
_PROGRESS_LOG_INTERVAL_S = 60.0


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class StreamEntry:
    stream: str
    entry_id: bytes
    fields: dict[bytes, bytes] | None  # None: the entry was deleted while pending


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    entry: StreamEntry
    event: UsageEvent


@dataclass(slots=True)
class BatchResult:
    """What one batch did: rows newly written (billable among them), redelivered duplicates,
    entries dead-lettered, and entries acknowledged in total."""

    written: int = 0
    billable: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    acknowledged: int = 0

    def add(self, other: BatchResult) -> None:
        self.written += other.written
        self.billable += other.billable
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered
        self.acknowledged += other.acknowledged


@dataclass(frozen=True, slots=True)
class StreamLag:
    lag: int  # pending + undelivered, all streams
    pending: int  # delivered, not acknowledged


@dataclass(slots=True)
class _Progress:
    started: float = field(default_factory=time.monotonic)
    events: int = 0


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _is_uuid(text: str) -> bool:
    return _UUID.fullmatch(text) is not None


def _checked_text(name: str, value: str, max_length: int, *, allow_empty: bool) -> str:
    if (not value and not allow_empty) or len(value) > max_length or "\x00" in value:
        raise MalformedUsageEvent(f"field {name} is empty, too long or not text")
    return value


def parse_entry(fields: dict[bytes, bytes]) -> UsageEvent:
    """A stream entry as a `UsageEvent` that `call_logs` will accept, or MalformedUsageEvent.

    Checking here (not in Postgres) keeps one bad entry from failing a whole batch.
    """
    try:
        event = UsageEvent.from_stream_fields(fields)
    except UnicodeDecodeError:
        raise MalformedUsageEvent("a field is not UTF-8") from None
    _checked_text("call_id", event.call_id, _MAX_TEXT, allow_empty=False)
    _checked_text("status", event.status, _MAX_TEXT, allow_empty=False)
    _checked_text("error_code", event.error_code, _MAX_ERROR_CODE, allow_empty=True)
    for name, value in (("user_id", event.user_id), ("key_id", event.key_id),
                        ("agent_id", event.agent_id)):  # fmt: skip
        if not _is_uuid(value):
            raise MalformedUsageEvent(f"field {name} is not a UUID")
    if event.status not in _STATUSES:
        raise MalformedUsageEvent("unknown status")
    if event.charge not in _CHARGES:
        raise MalformedUsageEvent("unknown charge")
    if not 1 <= event.agent_version <= _INT32_MAX:
        raise MalformedUsageEvent("agent_version out of range")
    if not 0 <= event.units <= _INT64_MAX:
        raise MalformedUsageEvent("units out of range")
    if event.units and (not event.billable or event.charge == "trial"):
        raise MalformedUsageEvent("units charged for a call that is not billable to quota")
    if event.billable and event.status not in _BILLABLE_STATUSES:
        raise MalformedUsageEvent("a billable call must be a success or cancelled")
    for name, number in (("input_tokens", event.input_tokens),
                         ("output_tokens", event.output_tokens)):  # fmt: skip
        if not 0 <= number <= _INT32_MAX:
            raise MalformedUsageEvent(f"field {name} out of range")
    if not _MIN_TS_MS <= event.ts_ms < _MAX_TS_MS:
        raise MalformedUsageEvent("ts_ms out of range")
    return event


def _client_request_id(value: str) -> str | None:
    if not value or len(value) > _MAX_TEXT or "\x00" in value:
        return None
    return value


# One statement, so one transaction. `fresh` is exactly the rows this statement inserted:
# a redelivered event conflicts, returns nothing and moves no aggregate.
_INGEST_SQL = f"""
WITH batch AS (
    SELECT *
    FROM unnest($1::text[], $2::text[], $3::uuid[], $4::int[], $5::uuid[], $6::uuid[],
                $7::bigint[], $8::bool[], $9::bool[], $10::int[], $11::int[], $12::int[],
                $13::text[], $14::text[], $15::timestamptz[])
         AS b (request_id, client_request_id, agent_id, agent_version, api_key_id, user_id,
               units, billable, trial, input_tokens, output_tokens, latency_ms, status,
               error_code, created_at)
),
inserted AS (
    INSERT INTO call_logs AS c (request_id, client_request_id, agent_id, agent_version,
                                api_key_id, user_id, units, billable, input_tokens,
                                output_tokens, latency_ms, status, error_code, cost_usd,
                                created_at)
    SELECT b.request_id, b.client_request_id, b.agent_id, b.agent_version, b.api_key_id,
           b.user_id, b.units, b.billable, b.input_tokens, b.output_tokens, b.latency_ms,
           b.status, b.error_code,
           CASE WHEN b.billable AND NOT b.trial
                THEN coalesce(v.price_per_call, a.price_per_call, 0)
                ELSE 0
           END,
           b.created_at
    FROM batch b
    LEFT JOIN agent_versions v ON v.agent_id = b.agent_id AND v.version = b.agent_version
    LEFT JOIN agents a ON a.id = b.agent_id
    ON CONFLICT (request_id, created_at) DO NOTHING
    RETURNING c.request_id, c.created_at, c.agent_id, c.user_id, c.units, c.billable,
              c.cost_usd, c.api_key_id
),
fresh AS (
    SELECT i.agent_id, i.user_id, i.units, i.billable, i.cost_usd, b.trial, i.api_key_id,
           i.created_at
    FROM inserted i JOIN batch b USING (request_id, created_at)
),
keys_used AS (
    UPDATE api_keys k
    SET last_used_at = greatest(k.last_used_at, t.last_used)
    FROM (SELECT api_key_id, max(created_at) AS last_used FROM fresh GROUP BY api_key_id) t
    WHERE k.id = t.api_key_id
    RETURNING 1
),
agents_updated AS (
    UPDATE agents a
    SET total_calls = a.total_calls + t.calls, total_revenue = a.total_revenue + t.revenue
    FROM (SELECT agent_id, count(*) AS calls, sum(cost_usd) AS revenue
          FROM fresh WHERE billable GROUP BY agent_id) t
    WHERE a.id = t.agent_id
    RETURNING a.creator_id, t.revenue
),
earnings AS (
    INSERT INTO creator_profiles AS p (user_id, display_name, pending_earnings)
    SELECT e.creator_id,
           coalesce(nullif(left(split_part(u.email, '@', 1), 100), ''), 'creator'),
           e.revenue
    FROM (SELECT creator_id, sum(revenue) AS revenue
          FROM agents_updated GROUP BY creator_id HAVING sum(revenue) > 0) e
    JOIN users u ON u.id = e.creator_id
    ON CONFLICT (user_id) DO UPDATE
        SET pending_earnings = p.pending_earnings + excluded.pending_earnings
    RETURNING 1
),
quota_used AS (
    UPDATE quotas q
    SET used_quota = q.used_quota + t.units
    FROM (SELECT user_id, sum(units) AS units
          FROM fresh WHERE units > 0 GROUP BY user_id) t
    WHERE q.user_id = t.user_id
    RETURNING 1
),
trials_used AS (
    INSERT INTO trial_usage AS tu (user_id, agent_id, calls_used)
    SELECT t.user_id, t.agent_id, least(t.calls, {_TRIAL_CAP})
    FROM (SELECT user_id, agent_id, count(*) AS calls
          FROM fresh WHERE billable AND trial GROUP BY user_id, agent_id) t
    WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)
      AND EXISTS (SELECT 1 FROM agents a WHERE a.id = t.agent_id)
    ON CONFLICT (user_id, agent_id) DO UPDATE
        SET calls_used = least(tu.calls_used + excluded.calls_used, {_TRIAL_CAP})
    RETURNING 1
)
SELECT count(*) AS written, count(*) FILTER (WHERE billable) AS billable FROM fresh
"""  # noqa: S608  (the only interpolation is a module constant)


def _columns(events: Sequence[UsageEvent]) -> list[list[Any]]:
    return [
        [e.call_id for e in events],
        [_client_request_id(e.request_id) for e in events],
        [e.agent_id for e in events],
        [e.agent_version for e in events],
        [e.key_id for e in events],
        [e.user_id for e in events],
        [e.units for e in events],
        [e.billable for e in events],
        [e.charge == "trial" for e in events],
        [e.input_tokens for e in events],
        [e.output_tokens for e in events],
        [min(max(e.latency_ms, 0), _INT32_MAX) for e in events],
        [e.status for e in events],
        [e.error_code or None for e in events],
        [e.created_at for e in events],
    ]


def _is_missing_partition(error: BaseException) -> bool:
    return isinstance(error, asyncpg.CheckViolationError) and "no partition" in str(error)


def _is_data_error(error: BaseException) -> bool:
    """Postgres refused the rows themselves (not the connection, not a lock)."""
    if _is_missing_partition(error):
        return False
    if isinstance(error, asyncpg.ForeignKeyViolationError):
        # trial_usage: its user or agent was deleted between the EXISTS check and the insert.
        # The retry skips the pair; the event itself is fine and must not be dead-lettered.
        return False
    # ValueError: asyncpg could not encode an argument (its client-side DataError).
    return isinstance(
        error, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError | ValueError
    )


def _months(events: Iterable[UsageEvent]) -> list[date]:
    return sorted({event.created_at.date().replace(day=1) for event in events})


def _stream_name(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _entries_of(stream: str, items: Iterable[Any]) -> list[StreamEntry]:
    entries: list[StreamEntry] = []
    for entry_id, raw in items:
        raw_id = entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()
        fields = raw if raw is None or isinstance(raw, dict) else dict(raw)
        entries.append(StreamEntry(stream, raw_id, fields))
    return entries


def _is_nogroup(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith("NOGROUP")


async def _wait(stop: asyncio.Event | None, seconds: float) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class UsageIngester:
    """One consumer of the usage streams (one consumer name). The worker's ingestion loop and
    its claim job share one: processing is idempotent, so even the same entries handled by
    both at once are written once and counted once."""

    def __init__(
        self,
        redis: redis_asyncio.Redis,
        db: asyncpg.Pool,
        *,
        settings: UsageIngestSettings | None = None,
        metrics: WorkerMetrics | None = None,
        consumer: str | None = None,
    ) -> None:
        self._redis = redis
        self._db = db
        self._settings = UsageIngestSettings.from_env({}) if settings is None else settings
        self._metrics = WorkerMetrics() if metrics is None else metrics
        self.consumer = default_consumer_name() if consumer is None else consumer
        self._progress = _Progress()

    # -- consumer group -------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        """Create the consumer group on every stream (and the stream); idempotent."""
        for start in range(0, len(STREAMS), _STREAMS_PER_PIPELINE):
            chunk = STREAMS[start : start + _STREAMS_PER_PIPELINE]
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in chunk:
                    pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
                replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, Exception) and not str(reply).startswith("BUSYGROUP"):
                    raise reply

    # -- reading --------------------------------------------------------------------------

    async def read_new(self, *, block_ms: int | None) -> list[StreamEntry]:
        """Entries never delivered to any consumer, from all streams (COUNT per stream)."""
        try:
            reply = await self._redis.xreadgroup(
                GROUP,
                self.consumer,
                dict.fromkeys(STREAMS, ">"),
                count=self._settings.read_count,
                block=block_ms,
            )
        except ResponseError as error:
            if not _is_nogroup(error):
                raise
            # Redis lost the groups (restart without persistence, FLUSHDB): recreate them.
            logger.warning("usage consumer group missing; recreating it")
            await self.ensure_groups()
            return []
        entries: list[StreamEntry] = []
        if not reply:
            return entries
        pairs = reply.items() if isinstance(reply, dict) else reply
        for stream, items in pairs:
            # RESP3 wraps each stream's entries in one more list.
            nested = isinstance(items, list) and items and isinstance(items[0], list)
            entries.extend(_entries_of(_stream_name(stream), items[0] if nested else items))
        return entries

    # -- processing -----------------------------------------------------------------------

    async def process(self, entries: Sequence[StreamEntry]) -> BatchResult:
        """Write entries (in batches of USAGE_BATCH_MAX) and acknowledge what is done.

        Raises on a failure that is not the entries' fault (Postgres or Redis down); the
        entries of the failing batch are then left pending, never acknowledged.
        """
        total = BatchResult()
        size = self._settings.batch_max
        for start in range(0, len(entries), size):
            total.add(await self.process_batch(entries[start : start + size]))
        return total

    async def process_batch(self, entries: Sequence[StreamEntry]) -> BatchResult:
        started = time.perf_counter()
        good: list[ParsedEntry] = []
        rejected: list[tuple[StreamEntry, str]] = []
        seen: set[tuple[str, int]] = set()
        for entry in entries:
            if entry.fields is None:
                continue
            try:
                event = parse_entry(entry.fields)
            except MalformedUsageEvent as error:
                rejected.append((entry, str(error)))
                continue
            identity = (event.call_id, event.ts_ms)
            if identity not in seen:  # the same event twice in one batch: write it once
                seen.add(identity)
                good.append(ParsedEntry(entry, event))
        result = BatchResult()
        refused: list[ParsedEntry] = []
        if good:
            refused = await self._write_resilient(good, result)
            rejected.extend((item.entry, "refused by Postgres") for item in refused)
        if rejected:
            await self._dead_letter(rejected)
            result.dead_lettered = len(rejected)
        await self._acknowledge(entries)
        result.acknowledged = len(entries)
        result.duplicates = len(good) - len(refused) - result.written
        self._record(result, time.perf_counter() - started)
        return result

    def _record(self, result: BatchResult, seconds: float) -> None:
        metrics = self._metrics
        metrics.batches.inc()
        metrics.batch_seconds.observe(seconds)
        metrics.events_ingested.labels("true").inc(result.billable)
        metrics.events_ingested.labels("false").inc(result.written - result.billable)
        metrics.events_duplicate.inc(max(0, result.duplicates))
        metrics.dead_lettered.inc(result.dead_lettered)
        self._progress.events += result.written

    async def _write_resilient(
        self, items: Sequence[ParsedEntry], result: BatchResult
    ) -> list[ParsedEntry]:
        """Write items; returns those Postgres refuses on their own (to be dead-lettered)."""
        try:
            written, billable = await self.write_events([item.event for item in items])
        except Exception as error:
            if not _is_data_error(error):
                raise
            if len(items) == 1:
                logger.error(
                    "usage event refused by Postgres; dead-lettering it: %s (%s)",
                    type(error).__name__,
                    items[0].entry.entry_id.decode(),
                    extra={"event": "usage_refused"},
                )
                return list(items)
            middle = len(items) // 2
            refused = await self._write_resilient(items[:middle], result)
            return refused + await self._write_resilient(items[middle:], result)
        result.written += written
        result.billable += billable
        return []

    async def write_events(self, events: Sequence[UsageEvent]) -> tuple[int, int]:
        """One transaction: new call_logs rows and their aggregates. Returns (new, billable)."""
        columns = _columns(events)
        for attempt in range(_TRANSACTION_RETRIES):
            try:
                row = await self._db.fetchrow(_INGEST_SQL, *columns)
            except asyncpg.CheckViolationError as error:
                if not _is_missing_partition(error) or attempt == _TRANSACTION_RETRIES - 1:
                    raise
                await self._ensure_partitions(events)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as error:
                if attempt == _TRANSACTION_RETRIES - 1:
                    raise
                logger.warning(
                    "usage batch hit %s; retrying it",
                    type(error).__name__,
                    extra={"event": "usage_batch_retry", "count": len(events)},
                )
                await asyncio.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
            else:
                assert row is not None
                return int(row["written"]), int(row["billable"])
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ensure_partitions(self, events: Iterable[UsageEvent]) -> None:
        for month in _months(events):
            created = await self._db.fetchval("SELECT ensure_call_log_partitions($1, 1)", month)
            if created:
                logger.warning(
                    "created call_logs partition for %s (usage event for a month without one)",
                    month.strftime("%Y-%m"),
                    extra={"event": "call_log_partition_created"},
                )

    async def _dead_letter(self, rejected: Sequence[tuple[StreamEntry, str]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry, reason in rejected:
                fields: dict[bytes, bytes] = dict(entry.fields or {})
                fields[b"_stream"] = entry.stream.encode()
                fields[b"_id"] = entry.entry_id
                fields[b"_error"] = reason.encode()
                pipe.xadd(
                    DEAD_LETTER_STREAM,
                    fields,  # type: ignore[arg-type]
                    maxlen=self._settings.dead_letter_maxlen,
                    approximate=True,
                )
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

    async def _acknowledge(self, entries: Iterable[StreamEntry]) -> None:
        """XACK, then XDEL: the entry's data is in Postgres, Redis need not keep it."""
        by_stream: dict[str, list[bytes]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        if not by_stream:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, GROUP, *ids)
                pipe.xdel(stream, *ids)
            await pipe.execute()

    # -- draining, claiming, sampling -----------------------------------------------------

    async def drain(self) -> int:
        """Read and write until no undelivered entry is left; returns rows written.

        The next read (and its parsing) overlaps the previous batch's Postgres write; at most
        one read is ahead. A failure is raised once the write in flight has ended (a write is
        never cancelled halfway); what was read ahead then stays pending.
        """
        written = 0
        in_flight: asyncio.Task[BatchResult] | None = None
        try:
            while True:
                entries = await self.read_new(block_ms=None)
                if in_flight is not None:
                    written += (await in_flight).written
                    in_flight = None
                if not entries:
                    return written
                in_flight = asyncio.create_task(self.process(entries))
        finally:
            if in_flight is not None and not in_flight.done():
                await asyncio.wait([in_flight])

    async def claim_stale(
        self, min_idle_ms: int | None = None, *, stop: asyncio.Event | None = None
    ) -> int:
        """Take over entries pending longer than `min_idle_ms` (any consumer, this one too)
        on every stream and process them; returns rows written. With `stop` set it returns
        after the round in hand (claimed entries are always processed before returning)."""
        if min_idle_ms is None:
            min_idle_ms = int(self._settings.claim_min_idle_s * 1000)
        cursors: dict[str, str | bytes] = dict.fromkeys(STREAMS, "0-0")
        written = 0
        while cursors:
            streams = list(cursors)
            claimed: list[StreamEntry] = []
            next_cursors: dict[str, str | bytes] = {}
            for start in range(0, len(streams), _STREAMS_PER_PIPELINE):
                chunk = streams[start : start + _STREAMS_PER_PIPELINE]
                async with self._redis.pipeline(transaction=False) as pipe:
                    for stream in chunk:
                        pipe.xautoclaim(
                            stream,
                            GROUP,
                            self.consumer,
                            min_idle_ms,
                            start_id=cursors[stream],
                            count=self._settings.read_count,
                        )
                    replies = await pipe.execute(raise_on_error=False)
                for stream, reply in zip(chunk, replies, strict=True):
                    if isinstance(reply, Exception):
                        if _is_nogroup(reply):
                            continue  # no group yet: nothing can be pending there
                        raise reply
                    cursor, items = reply[0], reply[1]
                    claimed.extend(_entries_of(stream, items))
                    if cursor not in (b"0-0", "0-0"):
                        next_cursors[stream] = cursor
            if claimed:
                self._metrics.claimed.inc(len(claimed))
                logger.info(
                    "claimed %d stale usage entries",
                    len(claimed),
                    extra={"event": "usage_claimed", "count": len(claimed)},
                )
                written += (await self.process(claimed)).written
            cursors = next_cursors
            if stop is not None and stop.is_set():
                break
        return written

    async def forget_idle_consumers(self) -> int:
        """Remove consumers idle longer than USAGE_CONSUMER_IDLE_DELETE_S with nothing
        pending (dead processes); returns how many (stream, consumer) pairs went."""
        idle_ms = int(self._settings.consumer_idle_delete_s * 1000)
        removed = 0
        for start in range(0, len(STREAMS), _STREAMS_PER_PIPELINE):
            chunk = STREAMS[start : start + _STREAMS_PER_PIPELINE]
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in chunk:
                    pipe.xinfo_consumers(stream, GROUP)
                replies = await pipe.execute(raise_on_error=False)
            doomed: list[tuple[str, str]] = []
            for stream, reply in zip(chunk, replies, strict=True):
                if isinstance(reply, Exception):
                    continue
                for consumer in reply:
                    name = _stream_name(consumer["name"])
                    if (
                        name != self.consumer
                        and int(consumer["pending"]) == 0
                        and int(consumer["idle"]) > idle_ms
                    ):
                        doomed.append((stream, name))
            if doomed:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for stream, name in doomed:
                        pipe.xgroup_delconsumer(stream, GROUP, name)
                    await pipe.execute(raise_on_error=False)
                removed += len(doomed)
        return removed

    async def sample_lag(self) -> StreamLag:
        """Pending + undelivered entries over all streams, into the lag gauges."""
        lag = pending = 0
        for start in range(0, len(STREAMS), _STREAMS_PER_PIPELINE):
            chunk = STREAMS[start : start + _STREAMS_PER_PIPELINE]
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in chunk:
                    pipe.xinfo_groups(stream)
                    pipe.xlen(stream)
                replies = await pipe.execute(raise_on_error=False)
            for index in range(len(chunk)):
                groups, length = replies[2 * index], replies[2 * index + 1]
                stream_length = 0 if isinstance(length, Exception) else int(length)
                group = None
                if not isinstance(groups, Exception):
                    group = next(
                        (g for g in groups if _stream_name(g["name"]) == GROUP),
                        None,
                    )
                if group is None:
                    lag += stream_length  # no group yet: everything is undelivered
                    continue
                group_pending = int(group["pending"])
                pending += group_pending
                undelivered = group.get("lag")
                if undelivered is None:
                    # Redis cannot tell (deleted entries in the range): every entry still in
                    # the stream is pending or undelivered, since acked ones are deleted.
                    lag += max(stream_length, group_pending)
                else:
                    lag += group_pending + int(undelivered)
        self._metrics.stream_lag.set(lag)
        self._metrics.stream_pending.set(pending)
        return StreamLag(lag, pending)

    # -- the long-running loop ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest until `stop` is set. What has been read is finished (written and
        acknowledged) before returning, unless Postgres keeps failing: then it stays pending
        for XAUTOCLAIM, never acknowledged."""
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.ensure_groups()
                break
            except (RedisError, OSError):
                logger.exception("cannot create the usage consumer groups; retrying")
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 30.0)
        logger.info("usage ingestion started as consumer %s", self.consumer)
        # One read ahead: the next XREADGROUP and its parsing overlap the write in flight.
        in_flight: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                try:
                    entries = await self.read_new(block_ms=self._settings.read_block_ms)
                except (RedisError, OSError):
                    logger.exception("reading the usage streams failed", extra={"event": "usage"})
                    await _wait(stop, backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if in_flight is not None:
                    await in_flight
                    in_flight = None
                if entries:
                    in_flight = asyncio.create_task(self._process_until_done(entries, stop))
                self._log_progress()
        finally:
            if in_flight is not None:
                await asyncio.wait([in_flight])  # finish what was read; never cut a write
        logger.info("usage ingestion stopped")

    async def _process_until_done(
        self, entries: Sequence[StreamEntry], stop: asyncio.Event
    ) -> None:
        """Write `entries` batch by batch, retrying a failing batch with backoff. A batch that
        still fails after a few attempts (or once stopping) is left pending, unacknowledged,
        for XAUTOCLAIM to retry later, so one stuck batch cannot stall ingestion forever."""
        size = self._settings.batch_max
        for start in range(0, len(entries), size):
            batch = entries[start : start + size]
            backoff = 0.5
            for attempt in range(1, _BATCH_ATTEMPTS + 1):
                try:
                    await self.process_batch(batch)
                    break
                except Exception:
                    self._metrics.batch_failures.inc()
                    logger.exception(
                        "usage batch failed (attempt %d of %d); it stays pending",
                        attempt,
                        _BATCH_ATTEMPTS,
                        extra={"event": "usage_batch_failed", "count": len(batch)},
                    )
                    if stop.is_set():
                        return  # stopping: leave this and the rest pending
                    if attempt == _BATCH_ATTEMPTS:
                        break
                    await _wait(stop, backoff)
                    backoff *= 2

    def _log_progress(self) -> None:
        progress = self._progress
        elapsed = time.monotonic() - progress.started
        if elapsed < _PROGRESS_LOG_INTERVAL_S:
            return
        if progress.events:
            logger.info(
                "usage ingestion: %d events in %.0f s (%.0f events/s)",
                progress.events,
                elapsed,
                progress.events / elapsed,
                extra={"event": "usage_throughput", "count": progress.events},
            )
        self._progress = _Progress()


async def ingest_once(
    redis: redis_asyncio.Redis,
    db: asyncpg.Pool,
    *,
    settings: UsageIngestSettings | None = None,
    metrics: WorkerMetrics | None = None,
    consumer: str | None = None,
) -> int:
    """Process every usage event available now; returns how many were newly written."""
    ingester = UsageIngester(redis, db, settings=settings, metrics=metrics, consumer=consumer)
    await ingester.ensure_groups()
    return await ingester.drain()
