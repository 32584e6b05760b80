"""The embedding interface: texts in, unit vectors out, and the model that made them.

Two implementations behind it, one file each: `local_embedder.LocalEmbedder` (all-MiniLM-L6-v2
in this process, the default) and `openai_embedder.OpenAIEmbedder` (any OpenAI-compatible
`/v1/embeddings`). Every stored chunk records `model` and `dimension`, so a change of model is
noticed and re-embedded (control_plane/knowledge/reembed.py) instead of silently comparing
vectors from two different spaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

# The width of knowledge_chunks.embedding (migrations/0003): every backend must produce it.
STORED_DIMENSION = 384

Vectors = NDArray[np.float32]  # (texts, dimension), each row of unit length


class EmbeddingError(Exception):
    """The embedding backend failed (unreachable, refused, or answered nonsense)."""


class Embedder(Protocol):
    @property
    def model(self) -> str:
        """`backend/model`, as recorded with every chunk (e.g. `local/all-MiniLM-L6-v2`)."""
        ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit vector per text, in order. Raises EmbeddingError."""
        ...

    async def aclose(self) -> None: ...


def normalised(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return unit


def pgvector_literal(vector: Sequence[float] | NDArray[np.float32]) -> str:
    """pgvector's text form, `[0.1,-0.2,...]` (asyncpg sends it as text; SQL casts it)."""
    return "[" + ",".join(format(float(value), ".7g") for value in vector) + "]"
