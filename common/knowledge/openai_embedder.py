"""The `openai` embedding backend: any OpenAI-compatible `POST /v1/embeddings`.

Asks for `dimensions=384` (what knowledge_chunks.embedding holds; OpenAI's text-embedding-3
models shorten their vectors on request) and checks the answer: one vector per input, in
order, of that width. Errors never carry the texts (they are creator content).

NumPy is imported by `embed` only (the worker's batches). The gateway asks one question per
call (`embed_question`), answered in plain Python: importing NumPy in a gateway worker would
load OpenBLAS, which starts a thread per core at import, beside the event loop (and ~15 MiB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from common.knowledge.settings import EmbeddingSettings
from common.knowledge.vectors import STORED_DIMENSION, EmbeddingError

if TYPE_CHECKING:
    from common.knowledge.embedding import Vectors

_MAX_INPUTS_PER_REQUEST = 64


class OpenAIEmbedder:
    def __init__(self, settings: EmbeddingSettings, *, client: httpx.AsyncClient | None = None):
        self._model_name = settings.openai_model
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = client or httpx.AsyncClient(
            base_url=settings.base_url, headers=headers, timeout=settings.timeout_s
        )

    @property
    def model(self) -> str:
        return f"openai/{self._model_name}"

    @property
    def dimension(self) -> int:
        return STORED_DIMENSION

    async def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np  # noqa: PLC0415 - the worker's batches only (see the docstring)

        from common.knowledge.embedding import normalised  # noqa: PLC0415

        texts = list(texts)
        rows = [
            row
            for start in range(0, len(texts), _MAX_INPUTS_PER_REQUEST)
            for row in await self._request(texts[start : start + _MAX_INPUTS_PER_REQUEST])
        ]
        vectors = np.array(rows, dtype=np.float32).reshape(len(rows), STORED_DIMENSION)
        return normalised(vectors)

    async def embed_question(self, text: str) -> list[float]:
        """The question's unit vector, without NumPy: `embed`'s row to float32 rounding."""
        (row,) = await self._request([text])
        norm = math.sqrt(math.fsum(value * value for value in row))
        scale = 1.0 / max(norm, 1e-12)
        return [value * scale for value in row]

    async def _request(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self._model_name, "input": texts, "dimensions": STORED_DIMENSION,
                "encoding_format": "float"}  # fmt: skip
        try:
            response = await self._client.post("/embeddings", json=body)
        except httpx.HTTPError as error:
            raise EmbeddingError(
                f"embeddings endpoint unreachable: {type(error).__name__}"
            ) from None
        if response.status_code != 200:
            raise EmbeddingError(f"embeddings endpoint answered {response.status_code}")
        try:
            data: list[dict[str, Any]] = response.json()["data"]
            rows = sorted(data, key=lambda item: int(item["index"]))
            vectors = [[float(value) for value in row["embedding"]] for row in rows]
        except (ValueError, KeyError, TypeError) as error:
            raise EmbeddingError("embeddings endpoint answered an unreadable body") from error
        widths = sorted({len(vector) for vector in vectors})
        if len(vectors) != len(texts) or widths != [STORED_DIMENSION]:
            raise EmbeddingError(
                f"expected {len(texts)} vectors of {STORED_DIMENSION},"
                f" got {len(vectors)} of widths {widths}"
            )
        return vectors

    async def aclose(self) -> None:
        await self._client.aclose()
