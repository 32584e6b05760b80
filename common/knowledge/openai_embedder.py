"""The `openai` embedding backend: any OpenAI-compatible `POST /v1/embeddings`.

Asks for `dimensions=384` (what knowledge_chunks.embedding holds; OpenAI's text-embedding-3
models shorten their vectors on request) and checks the answer: one vector per input, in
order, of that width. Errors never carry the texts (they are creator content).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from common.knowledge.embedding import STORED_DIMENSION, EmbeddingError, Vectors, normalised
from common.knowledge.settings import EmbeddingSettings

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
        texts = list(texts)
        if not texts:
            return np.zeros((0, STORED_DIMENSION), dtype=np.float32)
        parts = [
            await self._request(texts[start : start + _MAX_INPUTS_PER_REQUEST])
            for start in range(0, len(texts), _MAX_INPUTS_PER_REQUEST)
        ]
        return normalised(np.concatenate(parts))

    async def embed_question(self, text: str) -> list[float]:
        vectors = await self.embed([text])
        row: list[float] = vectors[0].tolist()
        return row

    async def _request(self, texts: list[str]) -> Vectors:
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
            vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as error:
            raise EmbeddingError("embeddings endpoint answered an unreadable body") from error
        if vectors.shape != (len(texts), STORED_DIMENSION):
            raise EmbeddingError(
                f"expected {len(texts)} vectors of {STORED_DIMENSION}, got shape {vectors.shape}"
            )
        return vectors

    async def aclose(self) -> None:
        await self._client.aclose()
