"""The configured embedding backend (`EMBEDDING_BACKEND`), for batches and for questions.

Imports happen inside: the gateway's `local` question backend must not load NumPy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from common.knowledge.settings import EmbeddingSettings

if TYPE_CHECKING:
    from common.knowledge.embedding import Embedder
    from common.knowledge.vectors import QuestionEmbedder


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The worker's: batches of chunks, the local model in this process. Cheap to call: the
    local model loads on its first `embed`."""
    if settings.backend == "openai":
        from common.knowledge.openai_embedder import OpenAIEmbedder  # noqa: PLC0415

        return OpenAIEmbedder(settings)
    from common.knowledge.local_embedder import LocalEmbedder  # noqa: PLC0415

    return LocalEmbedder(threads=settings.threads, runtime=settings.runtime)


def build_question_embedder(settings: EmbeddingSettings) -> QuestionEmbedder:
    """The gateway's: one question per call; the local model in the host's embedding service
    (started by the first question that finds none)."""
    if settings.backend == "openai":
        from common.knowledge.openai_embedder import OpenAIEmbedder  # noqa: PLC0415

        return OpenAIEmbedder(settings)
    from common.knowledge.embedding_wire import default_socket_path  # noqa: PLC0415
    from common.knowledge.service_embedder import ServiceEmbedder  # noqa: PLC0415

    return ServiceEmbedder(
        Path(settings.socket_path) if settings.socket_path else default_socket_path(),
        timeout_s=settings.timeout_s, start_timeout_s=settings.start_timeout_s,
        threads=settings.threads, nice=settings.nice, runtime=settings.runtime,
        max_pending=settings.max_pending,
    )  # fmt: skip
