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

from dataclasses import dataclass
from decimal import Decimal

from common.knowledge.settings import EmbeddingSettings
from common.settings import EnvSettings, env


@dataclass(frozen=True, slots=True)
class KnowledgeBaseSettings(EnvSettings):
    embedding: EmbeddingSettings
    max_file_bytes: int = env("KNOWLEDGE_MAX_FILE_BYTES", 10 * 1024 * 1024, minimum=1)
    max_files_per_agent: int = env("KNOWLEDGE_MAX_FILES_PER_AGENT", 100, minimum=1)
    max_files_per_upload: int = env("KNOWLEDGE_MAX_FILES_PER_UPLOAD", 10, minimum=1)
    poll_interval_s: float = env("KNOWLEDGE_POLL_INTERVAL_S", 1.0, minimum=0.01)
    embed_batch: int = env("KNOWLEDGE_EMBED_BATCH", 32, minimum=1)
    max_attempts: int = env("KNOWLEDGE_MAX_ATTEMPTS", 5, minimum=1)
    reembed_interval_s: float = env("KNOWLEDGE_REEMBED_INTERVAL_S", 60.0, minimum=0.05)
    unit_price: Decimal = env("UNIT_PRICE_USD", Decimal("0.01"))  # noqa: RUF009 - env() declares the field
