"""The gateway's `local` embedding backend: questions go to the host's embedding service
(common/knowledge/embedding_service.py) over its Unix socket; the first worker that finds no
service there starts one.

A worker pays a socket round trip per question and nothing else: no model, no NumPy, no CPU
on its event loop. Connections are reused. A connection that fails mid-exchange is closed,
never reused (an answer arriving late would be read as the next question's). A reused one
found dead (the service was restarted), or a new one to a service that is just dying, is
replaced, transparently.

Bounded: at most `max_pending` questions of this worker wait on the service at once (each
holds a connection, and the service embeds one batch at a time on one core). One more is
refused at once, an EmbeddingError (503 for its call), rather than queued behind a backlog it
would time out in anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from array import array
from collections.abc import Sequence
from pathlib import Path

import orjson

import common
from common.knowledge.embedding_wire import ERROR, VECTORS, FrameError, frame, read_frame
from common.knowledge.vectors import LOCAL_MODEL_NAME, STORED_DIMENSION, EmbeddingError, Runtime

_MAX_IDLE = 8
_POLL_S = 0.05
_UNREACHABLE = (FileNotFoundError, ConnectionRefusedError)
# The service must import this code, wherever the gateway was started from.
_CODE_ROOT = str(Path(common.__file__).resolve().parent.parent)

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ServiceEmbedder:
    def __init__(
        self,
        socket_path: Path,
        *,
        timeout_s: float,
        start_timeout_s: float,
        threads: int = 1,
        nice: int = 0,
        runtime: Runtime = "onnx",
        max_pending: int = 64,
    ) -> None:
        self._path = socket_path
        self._max_pending = max_pending
        self._pending = 0
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._threads = threads
        self._nice = nice
        self._runtime = runtime
        self._idle: list[Connection] = []
        self._starting = asyncio.Lock()
        self._started: asyncio.subprocess.Process | None = None
        self._answered = False  # until the service has answered once, allow for its start

    @property
    def model(self) -> str:
        return f"local/{LOCAL_MODEL_NAME}"

    async def embed_question(self, text: str) -> Sequence[float]:
        return (await self.embed([text]))[0]

    async def embed(self, texts: Sequence[str]) -> list[array[float]]:
        """One unit vector per text (float32 rows). Raises EmbeddingError."""
        texts = list(texts)
        if self._pending >= self._max_pending:
            raise EmbeddingError("the embedding service is busy")
        request = frame(orjson.dumps(texts))
        timeout = self._timeout_s if self._answered else self._start_timeout_s
        self._pending += 1
        try:
            async with asyncio.timeout(timeout):
                answer = await self._ask(request)
        except TimeoutError:
            raise EmbeddingError("the embedding service did not answer in time") from None
        except (OSError, asyncio.IncompleteReadError, FrameError) as error:
            raise EmbeddingError(f"embedding service unreachable: {type(error).__name__}") from None
        finally:
            self._pending -= 1
        kind, body = answer[:1], answer[1:]
        if kind == ERROR:
            raise EmbeddingError(f"embedding service: {body.decode(errors='replace')[:200]}")
        if kind != VECTORS or len(body) != len(texts) * STORED_DIMENSION * 4:
            raise EmbeddingError("the embedding service answered an unreadable frame")
        self._answered = True
        flat = array("f", body)
        if sys.byteorder != "little":
            flat.byteswap()
        return [flat[row * STORED_DIMENSION : (row + 1) * STORED_DIMENSION]
                for row in range(len(texts))]  # fmt: skip

    async def _ask(self, request: bytes) -> bytes:
        while self._idle:
            connection = self._idle.pop()
            try:
                return await self._exchange(connection, request)
            except (OSError, asyncio.IncompleteReadError):
                continue  # the service behind it is gone: try the next, then a new one
        try:
            return await self._exchange(await self._connect(), request)
        except (OSError, asyncio.IncompleteReadError):
            # Connected to a service in its last moments (its socket outlives it briefly, and
            # a service started meanwhile found its lock still held): once more, afresh.
            return await self._exchange(await self._connect(), request)

    async def _exchange(self, connection: Connection, request: bytes) -> bytes:
        reader, writer = connection
        try:
            writer.write(request)
            await writer.drain()
            answer = await read_frame(reader)
        except BaseException:  # cancelled or failed mid-exchange: never reuse it
            writer.close()
            raise
        if len(self._idle) < _MAX_IDLE:
            self._idle.append(connection)
        else:
            writer.close()
        return answer

    async def _connect(self) -> Connection:
        with contextlib.suppress(*_UNREACHABLE):
            return await asyncio.open_unix_connection(self._path)
        async with self._starting:  # one start per worker; the service's lock does the rest
            with contextlib.suppress(*_UNREACHABLE):
                return await asyncio.open_unix_connection(self._path)
            process = await self._start()
            while True:
                with contextlib.suppress(*_UNREACHABLE):
                    return await asyncio.open_unix_connection(self._path)
                if process.returncode is not None:
                    if process.returncode != 0:
                        raise EmbeddingError(f"the embedding service exited ({process.returncode})")
                    # 0: it found the lock held, yet nobody serves (a service was dying).
                    process = await self._start()
                await asyncio.sleep(_POLL_S)

    async def _start(self) -> asyncio.subprocess.Process:
        self._answered = False
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        python_path = os.pathsep.join(filter(None, [_CODE_ROOT, os.getenv("PYTHONPATH")]))
        environ = {**os.environ, "PYTHONPATH": python_path,
                   "OPENBLAS_NUM_THREADS": str(self._threads)}  # fmt: skip
        self._started = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "common.knowledge.embedding_service",
            "--socket", str(self._path), "--parent-pid", str(os.getpid()),
            "--nice", str(self._nice), "--runtime", self._runtime,
            "--threads", str(self._threads),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, env=environ,
        )  # fmt: skip
        return self._started

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
        process, self._started = self._started, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
