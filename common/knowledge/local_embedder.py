"""The `local` embedding backend: all-MiniLM-L6-v2 (common/knowledge/minilm.py) in this process.

Nothing is paid until the first `embed`: the model (~100 MiB, about a second) is loaded then,
once, in the worker thread. The forward pass is CPU work that releases the GIL inside ONNX
Runtime (or NumPy's kernels); it runs on a small thread pool of its own (`EMBEDDING_THREADS`),
each batch on one thread, so the event loop keeps serving other calls while a batch is
embedded, and at most that many embeddings run at once (more wait their turn in the pool's
queue, costing nothing but latency).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from common.knowledge.embedding import EmbeddingError, Vectors
from common.knowledge.minilm import DIMENSION, MODEL_NAME, MiniLM, Runtime


class LocalEmbedder:
    def __init__(self, *, threads: int = 1, runtime: Runtime = "onnx") -> None:
        self._runtime: Runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="embedding")
        self._model: MiniLM | None = None
        self._loading = threading.Lock()

    @property
    def model(self) -> str:
        return f"local/{MODEL_NAME}"

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """For callers already off the event loop (the benchmark, the worker's batches)."""
        model = self._model
        if model is None:
            with self._loading:
                if self._model is None:
                    self._model = MiniLM.load(runtime=self._runtime)
                model = self._model
        return model.embed(list(texts))

    async def embed(self, texts: Sequence[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self.embed_sync, list(texts))
        except (OSError, RuntimeError, ValueError) as error:  # model files missing or broken
            raise EmbeddingError(f"local embedding failed: {type(error).__name__}") from error

    async def embed_question(self, text: str) -> list[float]:
        row: list[float] = (await self.embed([text]))[0].tolist()
        return row

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
