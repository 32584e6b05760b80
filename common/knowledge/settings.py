"""Knowledge settings both apps read: which embedding model, and how retrieval ranks.

The worker embeds the chunks and the gateway embeds the questions, so both must name the same
model: these variables are set alike on both (one ConfigMap in k8s/).

| variable | default | meaning |
|---|---|---|
| `EMBEDDING_BACKEND` | local | `local` (all-MiniLM-L6-v2 in process, no network) or `openai` (any OpenAI-compatible `/v1/embeddings`) |
| `EMBEDDING_MODEL` | text-embedding-3-small | the `openai` backend's model (the local one is always all-MiniLM-L6-v2) |
| `EMBEDDING_BASE_URL` / `EMBEDDING_API_KEY` | OpenAI / — | the `openai` backend's endpoint and key |
| `EMBEDDING_TIMEOUT_S` | 10 | one embeddings request (`openai`), or one question to the embedding service |
| `EMBEDDING_RUNTIME` | onnx | the local model's forward pass: `onnx` (ONNX Runtime's fused kernels, ~2x faster) or `numpy`; the same vectors (cosine > 0.99999) |
| `EMBEDDING_THREADS` | 1 | the local model's threads (ONNX Runtime intra-op or BLAS) in the embedding service; the worker's concurrent batches |
| `EMBEDDING_SOCKET` | a private temp folder | the gateway's embedding service (one per host, shared by its workers; common/knowledge/embedding_service.py) |
| `EMBEDDING_NICE` | 0 | the embedding service's niceness: above 0, calls without knowledge get the CPU first |
| `EMBEDDING_START_TIMEOUT_S` | 60 | a question that has to wait for the service to start and load the model |
| `EMBEDDING_MAX_PENDING` | 64 | questions one gateway worker may have waiting on the embedding service; one more is refused (503) at once |
| `KNOWLEDGE_SIMILARITY_THRESHOLD` | 0.25 | passages less cosine-similar to the question are never injected (seed property 18) |
| `KNOWLEDGE_CANDIDATES` | 20 | vector and full-text hits each, before reciprocal-rank fusion |
| `KNOWLEDGE_TEXT_BUDGET` | 500 | the full-text half ORs the question's rarest words while the chunks they occur in add up to at most this (bounds its cost in a large knowledge base) |
| `KNOWLEDGE_QUERY_CACHE_SIZE` | 1024 | recent questions whose embedding and passages the gateway keeps |
| `KNOWLEDGE_QUERY_CACHE_TTL_S` | 60 | how long a cached retrieval is reused |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.knowledge.retrieval import DEFAULT_TEXT_BUDGET
from common.knowledge.vectors import Runtime
from common.settings import EnvSettings, env

Backend = Literal["local", "openai"]


def _base_url(name: str, raw: str) -> str:
    return raw.rstrip("/")


@dataclass(frozen=True, slots=True)
class EmbeddingSettings(EnvSettings):
    backend: Backend = env("EMBEDDING_BACKEND", "local")  # noqa: RUF009 - env() declares the field
    openai_model: str = env("EMBEDDING_MODEL", "text-embedding-3-small")
    base_url: str = env("EMBEDDING_BASE_URL", "https://api.openai.com/v1", parse=_base_url)
    api_key: str | None = env("EMBEDDING_API_KEY", None, secret=True)
    timeout_s: float = env("EMBEDDING_TIMEOUT_S", 10.0, minimum=0.1)
    runtime: Runtime = env("EMBEDDING_RUNTIME", "onnx")  # noqa: RUF009
    threads: int = env("EMBEDDING_THREADS", 1, minimum=1)
    socket_path: str | None = env("EMBEDDING_SOCKET", None)
    nice: int = env("EMBEDDING_NICE", 0, minimum=0, maximum=19)
    start_timeout_s: float = env("EMBEDDING_START_TIMEOUT_S", 60.0, minimum=1.0)
    max_pending: int = env("EMBEDDING_MAX_PENDING", 64, minimum=1)


@dataclass(frozen=True, slots=True)
class RetrievalSettings(EnvSettings):
    embedding: EmbeddingSettings
    # Passages less similar are never injected: a cosine.
    similarity_threshold: float = env(
        "KNOWLEDGE_SIMILARITY_THRESHOLD", 0.25, minimum=-1.0, maximum=1.0
    )
    candidates: int = env("KNOWLEDGE_CANDIDATES", 20, minimum=1)
    text_budget: int = env("KNOWLEDGE_TEXT_BUDGET", DEFAULT_TEXT_BUDGET, minimum=0)
    cache_size: int = env("KNOWLEDGE_QUERY_CACHE_SIZE", 1024, minimum=0)
    cache_ttl_s: float = env("KNOWLEDGE_QUERY_CACHE_TTL_S", 60.0, minimum=0.0)
