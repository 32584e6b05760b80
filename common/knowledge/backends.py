"""The configured embedding backend (`EMBEDDING_BACKEND`)."""

from __future__ import annotations

from common.knowledge.embedding import Embedder
from common.knowledge.local_embedder import LocalEmbedder
from common.knowledge.openai_embedder import OpenAIEmbedder
from common.knowledge.settings import EmbeddingSettings


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """Cheap to call: the local model loads on its first `embed`."""
    if settings.backend == "openai":
        return OpenAIEmbedder(settings)
    return LocalEmbedder(threads=settings.threads)
