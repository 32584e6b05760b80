"""What the gateway's side of embeddings needs, without NumPy (~15 MiB of RSS per worker):
the stored width, the error, pgvector's text form, and the one-question interface.

The full interface (batches, NumPy arrays) is common/knowledge/embedding.py, for the worker.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol, SupportsFloat

# The width of knowledge_chunks.embedding (migrations/0003): every backend must produce it.
STORED_DIMENSION = 384
LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
# The local model's forward pass (`EMBEDDING_RUNTIME`, common/knowledge/minilm.py).
Runtime = Literal["onnx", "numpy"]
RUNTIMES: tuple[Runtime, ...] = ("onnx", "numpy")


class EmbeddingError(Exception):
    """The embedding backend failed (unreachable, refused, or answered nonsense)."""


class QuestionEmbedder(Protocol):
    """One question in, its unit vector out: what the hot path asks of a backend."""

    @property
    def model(self) -> str:
        """`backend/model`, as recorded with every chunk (e.g. `local/all-MiniLM-L6-v2`)."""
        ...

    async def embed_question(self, text: str) -> Sequence[float]:
        """Raises EmbeddingError."""
        ...

    async def aclose(self) -> None: ...


def pgvector_literal(vector: Iterable[SupportsFloat]) -> str:
    """pgvector's text form, `[0.1,-0.2,...]`, each value to 7 significant digits (asyncpg
    sends it as text; SQL casts it). One %-format of a template per width: ~35% less CPU
    than formatting value by value, on the event loop of every knowledge call."""
    values = tuple(map(float, vector))
    return _literal_template(len(values)) % values


@functools.lru_cache(maxsize=4)
def _literal_template(width: int) -> str:
    return "[" + ",".join(["%.7g"] * width) + "]"
