"""The worker's knowledge ingestion: uploaded file → text → chunks → vectors → retrievable.

The queue is durable because it is Postgres: every `knowledge_files` row in `processing` is
work to do (an upload commits its row and bytes together, so nothing is queued that is not
stored). A worker takes a file by holding a session advisory lock on it, so two workers
never process one file, and a worker that dies (even SIGKILL) loses the lock with its
connection: the file is taken again at once by whichever worker looks next.

Processing is resumable and idempotent:
- chunking depends only on the text and the file's own chunk settings (fixed at upload), so
  a second attempt makes exactly the same chunks;
- chunks are embedded `KNOWLEDGE_EMBED_BATCH` at a time and each batch is committed to
  `knowledge_chunk_staging`; a new attempt embeds only what is not staged yet;
- retrieval never reads the staging table. The last transaction moves the staged chunks into
  `knowledge_chunks`, marks the file `ready` and bumps the agent's knowledge version
  (control_plane/knowledge/versions.py): the file becomes visible completely, or not at all.

A file that cannot be read is `failed` with the reason; one whose processing was interrupted
`KNOWLEDGE_MAX_ATTEMPTS` times (a poison file that kills the worker) too. An embedding
backend that is down fails nothing: the file waits and is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING

import asyncpg
from prometheus_client import CollectorRegistry

from common.db import DbConnection
from common.knowledge.chunking import Chunk, split_text
from common.knowledge.vectors import EmbeddingError, pgvector_literal
from common.metrics import MetricSet
from common.redis_store import RedisClient
from control_plane.knowledge import repository
from control_plane.knowledge.extraction import ExtractionError, extract_text
from control_plane.knowledge.file_types import FileKind
from control_plane.knowledge.settings import KnowledgeBaseSettings
from control_plane.knowledge.versions import knowledge_change

if TYPE_CHECKING:  # the worker loads NumPy with its embedder only (control_plane/worker.py)
    from common.knowledge.embedding import Embedder

logger = logging.getLogger("agentlink.knowledge")

_QUEUE_PEEK = 20  # files looked at per round; more than there are workers


class KnowledgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metrics = MetricSet(registry)
        self.files = metrics.counter(
            "agentlink_worker_knowledge_files_total",
            "Knowledge files processed, by outcome (ready, failed).",
            ["outcome"],
            known=("ready", "failed"),
        )
        self.chunks_embedded = metrics.counter(
            "agentlink_worker_knowledge_chunks_embedded_total",
            "Knowledge chunks embedded (ingestion and re-embedding).",
        )
        self.embed_seconds = metrics.histogram(
            "agentlink_worker_knowledge_embed_batch_seconds",
            "Time to embed one batch of knowledge chunks.",
        )


def file_lock_key(file_id: str) -> int:
    """A bigint advisory-lock key for the file (its UUID's first 8 bytes)."""
    return int.from_bytes(uuid.UUID(file_id).bytes[:8], "big", signed=True)


class KnowledgeIngester:
    def __init__(
        self,
        db: asyncpg.Pool,
        redis: RedisClient,
        embedder: Embedder,
        settings: KnowledgeBaseSettings,
        metrics: KnowledgeMetrics,
    ) -> None:
        self._db = db
        self._redis = redis
        self._embedder = embedder
        self._settings = settings
        self._metrics = metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Process files until `stop`; an idle worker looks again every poll interval. A
        stop lets the file in hand finish its current batch (committed), nothing more."""
        while not stop.is_set():
            try:
                busy = await self.process_next(stop)
            except Exception:
                # Postgres or the embedding backend is down, or a bug: log it, try again
                # later. A file that fails every time is failed by its attempt count.
                logger.exception("knowledge ingestion failed", extra={"event": "knowledge"})
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._settings.poll_interval_s)

    async def process_next(self, stop: asyncio.Event | None = None) -> bool:
        """Take one waiting file nobody else holds and process it; False if there was none."""
        async with self._db.acquire() as connection:
            for row in await repository.queued_files(connection, _QUEUE_PEEK):
                key = file_lock_key(row["id"])
                if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                    continue  # another worker has it
                try:
                    await self._process(connection, row["id"], stop)
                finally:
                    await connection.execute("SELECT pg_advisory_unlock($1)", key)
                return True
        return False

    async def _process(
        self, connection: DbConnection, file_id: str, stop: asyncio.Event | None
    ) -> None:
        file = await repository.claim_file(connection, file_id)
        if file is None:
            return  # finished or deleted since we looked
        if file["attempts"] > self._settings.max_attempts:
            await self._fail(connection, file_id, "Processing was interrupted too many times.")
            return
        content = await repository.file_content(connection, file_id)
        if content is None:
            return  # deleted since the claim
        try:
            text = await asyncio.to_thread(extract_text, FileKind(file["file_type"]), content)
        except ExtractionError as error:
            await self._fail(connection, file_id, str(error))
            return
        chunks = split_text(text, file["chunk_size"], file["chunk_overlap"])
        model = self._embedder.model
        staged = await repository.staged_chunk_indexes(connection, file_id, model)
        todo = [chunk for chunk in chunks if chunk.index not in staged]
        try:
            for start in range(0, len(todo), self._settings.embed_batch):
                if stop is not None and stop.is_set():
                    return  # the next worker (or this one, restarted) goes on from here
                await self._stage(
                    connection, file_id, todo[start : start + self._settings.embed_batch]
                )
        except EmbeddingError:
            # The backend is down: not the file's fault, so this attempt does not count.
            await connection.execute(
                "UPDATE knowledge_files SET attempts = attempts - 1 WHERE id = $1", file_id
            )
            raise
        except asyncpg.ForeignKeyViolationError:
            return  # the file was deleted while we embedded it
        await self._publish(file["agent_id"], file_id, len(chunks))

    async def _stage(self, connection: DbConnection, file_id: str, batch: list[Chunk]) -> None:
        started = time.perf_counter()
        vectors = await self._embedder.embed([chunk.text for chunk in batch])
        self._metrics.embed_seconds.observe(time.perf_counter() - started)
        model, dimension = self._embedder.model, self._embedder.dimension
        rows = [
            (file_id, chunk.index, chunk.text, pgvector_literal(vector), model, dimension)
            for chunk, vector in zip(batch, vectors, strict=True)
        ]
        async with connection.transaction():
            await repository.stage_chunks(connection, rows)
        self._metrics.chunks_embedded.inc(len(batch))

    async def _publish(self, agent_id: str, file_id: str, expected: int) -> None:
        async with knowledge_change(self._db, self._redis, agent_id) as change:
            if change is None:
                return  # the agent is gone, and its files with it
            file = await repository.file_for_update(change.connection, file_id)
            if file is None or file["status"] != "processing":
                return
            count = await repository.publish_staged(change.connection, agent_id, file_id)
            if count != expected:  # cannot happen unless chunking stopped being deterministic
                raise RuntimeError(f"file {file_id}: {count} chunks stored, {expected} made")
            await change.bump(self._redis, self._settings.unit_price)
        self._metrics.files.labels("ready").inc()
        logger.info(
            "knowledge file ready",
            extra={"event": "knowledge_ready", "count": count},
        )

    async def _fail(self, connection: DbConnection, file_id: str, reason: str) -> None:
        async with connection.transaction():
            await repository.fail_file(connection, file_id, reason)
        self._metrics.files.labels("failed").inc()
        logger.info("knowledge file failed", extra={"event": "knowledge_failed"})
