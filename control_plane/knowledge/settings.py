"""Knowledge-base settings of the control plane (uploads) and the worker (ingestion).

| variable | default | meaning |
|---|---|---|
| `KNOWLEDGE_MAX_FILE_BYTES` | 10485760 | larger uploads get 413 `41301` |
| `KNOWLEDGE_MAX_FILES_PER_AGENT` | 100 | files in one agent's knowledge base |
| `KNOWLEDGE_MAX_FILES_PER_UPLOAD` | 10 | files in one multipart request |
| `KNOWLEDGE_POLL_INTERVAL_S` | 1 | how often an idle worker looks for uploaded files |
| `KNOWLEDGE_EMBED_BATCH` | 32 | chunks embedded and committed together (a killed worker redoes at most one batch) |
| `KNOWLEDGE_MAX_ATTEMPTS` | 5 | a file whose processing was interrupted this often is failed |
| `KNOWLEDGE_REEMBED_INTERVAL_S` | 60 | how often the worker looks for chunks of another embedding model |

The embedding model is `common/knowledge/settings.py`'s (`EMBEDDING_*`), the same as the
gateway's. `UNIT_PRICE_USD` is read here too: the worker rewrites the gateway's agent record
when an agent's knowledge version changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

from common.knowledge.settings import EmbeddingSettings
from common.settings import Environ, env_decimal, env_float, env_int


@dataclass(frozen=True, slots=True)
class KnowledgeBaseSettings:
    embedding: EmbeddingSettings
    max_file_bytes: int
    max_files_per_agent: int
    max_files_per_upload: int
    poll_interval_s: float
    embed_batch: int
    max_attempts: int
    reembed_interval_s: float
    unit_price: Decimal

    @classmethod
    def from_env(cls, env: Environ | None = None) -> KnowledgeBaseSettings:
        env = os.environ if env is None else env
        return cls(
            embedding=EmbeddingSettings.from_env(env),
            max_file_bytes=env_int(env, "KNOWLEDGE_MAX_FILE_BYTES", 10 * 1024 * 1024, minimum=1),
            max_files_per_agent=env_int(env, "KNOWLEDGE_MAX_FILES_PER_AGENT", 100, minimum=1),
            max_files_per_upload=env_int(env, "KNOWLEDGE_MAX_FILES_PER_UPLOAD", 10, minimum=1),
            poll_interval_s=env_float(env, "KNOWLEDGE_POLL_INTERVAL_S", 1.0, minimum=0.01),
            embed_batch=env_int(env, "KNOWLEDGE_EMBED_BATCH", 32, minimum=1),
            max_attempts=env_int(env, "KNOWLEDGE_MAX_ATTEMPTS", 5, minimum=1),
            reembed_interval_s=env_float(env, "KNOWLEDGE_REEMBED_INTERVAL_S", 60.0, minimum=0.05),
            unit_price=env_decimal(env, "UNIT_PRICE_USD", "0.01"),
        )
