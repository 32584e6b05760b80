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

# Re-exported: the worker's modules import the whole interface from here.
from common.knowledge.vectors import STORED_DIMENSION, EmbeddingError, pgvector_literal

__all__ = ["STORED_DIMENSION", "Embedder", "EmbeddingError", "Vectors", "normalised",
           "pgvector_literal"]  # fmt: skip

Vectors = NDArray[np.float32]  # (texts, dimension), each row of unit length


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
