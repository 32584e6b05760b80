"""Knowledge settings both apps read: which embedding model, and how retrieval ranks.

The worker embeds the chunks and the gateway embeds the questions, so both must name the same
model: these variables are set alike on both (one ConfigMap in k8s/).

| variable | default | meaning |
|---|---|---|
| `EMBEDDING_BACKEND` | local | `local` (all-MiniLM-L6-v2 in process, no network) or `openai` (any OpenAI-compatible `/v1/embeddings`) |
| `EMBEDDING_MODEL` | text-embedding-3-small | the `openai` backend's model (the local one is always all-MiniLM-L6-v2) |
| `EMBEDDING_BASE_URL` / `EMBEDDING_API_KEY` | OpenAI / — | the `openai` backend's endpoint and key |
| `EMBEDDING_TIMEOUT_S` | 10 | one `openai` embeddings request |
| `EMBEDDING_THREADS` | 1 | threads running the local model, off the event loop |
| `KNOWLEDGE_SIMILARITY_THRESHOLD` | 0.25 | passages less cosine-similar to the question are never injected (seed property 18) |
| `KNOWLEDGE_CANDIDATES` | 20 | vector and full-text hits each, before reciprocal-rank fusion |
| `KNOWLEDGE_QUERY_CACHE_SIZE` | 1024 | recent questions whose embedding and passages the gateway keeps |
| `KNOWLEDGE_QUERY_CACHE_TTL_S` | 60 | how long a cached retrieval is reused |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from common.settings import Environ, SettingsError, env_float, env_int, env_str

BACKENDS = ("local", "openai")


@dataclass(frozen=True, slots=True)
class EmbeddingSettings:
    backend: str
    openai_model: str
    base_url: str
    api_key: str | None
    timeout_s: float
    threads: int

    @classmethod
    def from_env(cls, env: Environ | None = None) -> EmbeddingSettings:
        env = os.environ if env is None else env
        backend = env_str(env, "EMBEDDING_BACKEND", "local")
        if backend not in BACKENDS:
            raise SettingsError(f"EMBEDDING_BACKEND must be one of {', '.join(BACKENDS)}")
        return cls(
            backend=backend,
            openai_model=env_str(env, "EMBEDDING_MODEL", "text-embedding-3-small"),
            base_url=env_str(env, "EMBEDDING_BASE_URL", "https://api.openai.com/v1").rstrip("/"),
            api_key=env.get("EMBEDDING_API_KEY") or None,
            timeout_s=env_float(env, "EMBEDDING_TIMEOUT_S", 10.0, minimum=0.1),
            threads=env_int(env, "EMBEDDING_THREADS", 1, minimum=1),
        )


@dataclass(frozen=True, slots=True)
class RetrievalSettings:
    embedding: EmbeddingSettings
    similarity_threshold: float
    candidates: int
    cache_size: int
    cache_ttl_s: float

    @classmethod
    def from_env(cls, env: Environ | None = None) -> RetrievalSettings:
        env = os.environ if env is None else env
        threshold = env_float(env, "KNOWLEDGE_SIMILARITY_THRESHOLD", 0.25)
        if not -1.0 <= threshold <= 1.0:
            raise SettingsError("KNOWLEDGE_SIMILARITY_THRESHOLD must be a cosine in [-1, 1]")
        return cls(
            embedding=EmbeddingSettings.from_env(env),
            similarity_threshold=threshold,
            candidates=env_int(env, "KNOWLEDGE_CANDIDATES", 20, minimum=1),
            cache_size=env_int(env, "KNOWLEDGE_QUERY_CACHE_SIZE", 1024, minimum=0),
            cache_ttl_s=env_float(env, "KNOWLEDGE_QUERY_CACHE_TTL_S", 60.0, minimum=0.0),
        )
