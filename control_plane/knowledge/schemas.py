"""Response bodies of the knowledge routes (uploads are multipart, not a JSON body)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


class KnowledgeFileOut(msgspec.Struct):
    id: str
    filename: str
    file_type: Literal["txt", "md", "pdf", "html"]
    file_size: int
    status: Literal["processing", "ready", "failed"]
    chunk_count: int
    error: str | None  # why it failed, when it did
    created_at: datetime
    processed_at: datetime | None


class KnowledgeFileList(msgspec.Struct):
    items: list[KnowledgeFileOut]  # oldest first (one upload: by name)
    knowledge_version: int  # changes whenever what retrieval sees changes


class DeletedFiles(msgspec.Struct):
    deleted: int
    knowledge_version: int
