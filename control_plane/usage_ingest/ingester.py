"""The ingester: read, parse, write, acknowledge — and the worker's long-running loop.

Failures. A batch that Postgres refuses for its data (which parsing should have caught) is
split in halves until the offending event is alone, and that one is dead-lettered. Anything
else (Postgres or Redis down): nothing is acknowledged, and the loop retries the same batch
with backoff; a batch that still fails after a few attempts stays pending for `claim_stale`
(run periodically), which takes over every entry idle longer than `USAGE_CLAIM_MIN_IDLE_S`
with XAUTOCLAIM and processes it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from common.cancellation import raise_if_cancelled
from common.redis_store import RedisClient
from common.retry import retry
from common.usage_events import MalformedUsageEvent, UsageEvent
from control_plane.settings import UsageIngestSettings
from control_plane.usage_ingest import streams
from control_plane.usage_ingest.parse import parse_entry
from control_plane.usage_ingest.streams import STREAMS, StreamEntry, StreamLag
from control_plane.usage_ingest.write import is_data_error
from control_plane.usage_ingest.write import write_events as write_batch
from control_plane.worker_metrics import WorkerMetrics

logger = logging.getLogger("agentlink.worker.usage")

_BATCH_ATTEMPTS = 5  # 0.5 + 1 + 2 + 4 s of backoff between them
_PROGRESS_LOG_INTERVAL_S = 60.0
# A cluster client's own errors (no primary holds a slot, say) are not RedisErrors.
_REDIS_DOWN = (RedisError, RedisClusterException, OSError)


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


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


@dataclass(slots=True)
class _Progress:
    started: float = field(default_factory=time.monotonic)
    events: int = 0


def _is_redis_down(error: BaseException) -> bool:
    return isinstance(error, _REDIS_DOWN)


class UsageIngester:
    """One consumer of the usage streams (one consumer name). The worker's ingestion loop and
    its claim job share one: processing is idempotent, so even the same entries handled by
    both at once are written once and counted once."""

    def __init__(
        self,
        redis: RedisClient,
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

    # -- Redis: the streams ---------------------------------------------------------------

    async def ensure_groups(self) -> None:
        """Create the consumer group on every stream (and the stream); idempotent."""
        await streams.create_groups(self._redis)

    async def read_new(self, *, block_ms: int | None) -> list[StreamEntry]:
        """Entries never delivered to any consumer, from all streams (COUNT per stream)."""
        try:
            return await streams.read_new(
                self._redis, self.consumer, count=self._settings.read_count, block_ms=block_ms
            )
        except ResponseError as error:
            if not streams.is_nogroup(error):
                raise
            # Redis lost the groups (restart without persistence, FLUSHDB): recreate them.
            logger.warning("usage consumer group missing; recreating it")
            await self.ensure_groups()
            return []

    async def _acknowledge(self, entries: Iterable[StreamEntry]) -> None:
        await streams.acknowledge(self._redis, entries)

    async def _dead_letter(self, rejected: Sequence[tuple[StreamEntry, str]]) -> None:
        await streams.dead_letter(self._redis, rejected, maxlen=self._settings.dead_letter_maxlen)

    # -- Postgres: the batch --------------------------------------------------------------

    async def write_events(self, events: Sequence[UsageEvent]) -> tuple[int, int]:
        """One transaction: new call_logs rows and their aggregates. Returns (new, billable)."""
        return await write_batch(self._db, events)

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
            if not is_data_error(error):
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
            claimed, cursors = await streams.claim_pending(
                self._redis,
                self.consumer,
                cursors,
                min_idle_ms=min_idle_ms,
                count=self._settings.read_count,
            )
            if claimed:
                self._metrics.claimed.inc(len(claimed))
                logger.info(
                    "claimed %d stale usage entries",
                    len(claimed),
                    extra={"event": "usage_claimed", "count": len(claimed)},
                )
                written += (await self.process(claimed)).written
            if stop is not None and stop.is_set():
                break
        return written

    async def forget_idle_consumers(self) -> int:
        """Remove consumers idle longer than USAGE_CONSUMER_IDLE_DELETE_S with nothing
        pending (dead processes); returns how many (stream, consumer) pairs went."""
        idle_ms = int(self._settings.consumer_idle_delete_s * 1000)
        return await streams.forget_idle_consumers(self._redis, self.consumer, idle_ms)

    async def sample_lag(self) -> StreamLag:
        """Pending + undelivered entries over all streams, into the lag gauges."""
        lag = await streams.stream_lag(self._redis)
        self._metrics.stream_lag.set(lag.lag)
        self._metrics.stream_pending.set(lag.pending)
        return lag

    # -- the long-running loop ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest until `stop` is set. What has been read is finished (written and
        acknowledged) before returning, unless Postgres keeps failing: then it stays pending
        for XAUTOCLAIM, never acknowledged."""

        def groups_failed(error: BaseException, attempt: int) -> None:
            logger.error("cannot create the usage consumer groups; retrying", exc_info=error)

        def read_failed(error: BaseException, attempt: int) -> None:
            logger.error("reading the usage streams failed", exc_info=error,
                         extra={"event": "usage"})  # fmt: skip

        with contextlib.suppress(*_REDIS_DOWN):  # raised only when stopping before Redis is back
            await retry(
                self.ensure_groups, retry_on=_is_redis_down, on_failure=groups_failed, stop=stop
            )
        logger.info("usage ingestion started as consumer %s", self.consumer)
        # One read ahead: the next XREADGROUP and its parsing overlap the write in flight.
        in_flight: asyncio.Task[None] | None = None
        block_ms = self._settings.read_block_ms
        try:
            while not stop.is_set():
                try:
                    entries = await retry(
                        lambda: self.read_new(block_ms=block_ms),
                        retry_on=_is_redis_down,
                        on_failure=read_failed,
                        stop=stop,
                    )
                except _REDIS_DOWN:
                    break  # stopping
                # redis-py may have swallowed a cancellation during the read; what it read
                # stays pending for XAUTOCLAIM (stop, not cancel, is the way to finish it).
                raise_if_cancelled()
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

            def batch_failed(error: BaseException, attempt: int, count: int = len(batch)) -> None:
                self._metrics.batch_failures.inc()
                logger.error(
                    "usage batch failed (attempt %d of %d); it stays pending",
                    attempt,
                    _BATCH_ATTEMPTS,
                    exc_info=error,
                    extra={"event": "usage_batch_failed", "count": count},
                )

            try:
                await retry(
                    functools.partial(self.process_batch, batch),
                    retry_on=lambda error: True,
                    attempts=_BATCH_ATTEMPTS,
                    on_failure=batch_failed,
                    stop=stop,
                )
            except Exception:
                if stop.is_set():
                    return  # stopping: leave this and the rest pending

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
    redis: RedisClient, db: asyncpg.Pool, *, metrics: WorkerMetrics | None = None
) -> int:
    """Process every usage event available now, as a consumer with the default settings
    (tests and tools; the worker keeps one `UsageIngester`); returns how many were newly
    written."""
    ingester = UsageIngester(redis, db, metrics=metrics)
    await ingester.ensure_groups()
    return await ingester.drain()
