"""Request and response bodies of the agent routes.

The config body mirrors `common.domain.AgentConfig`, the encrypted part of an agent. Limits a
type can state are here (msgspec validates them into 400 `40002` naming the field); the
service adds the ones that span fields or need the settings (price range, fallbacks distinct
from the primary model, chunk overlap below chunk size).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from control_plane.schema_types import PageQuery

MAX_SYSTEM_PROMPT_CHARS = 32_000
MAX_FALLBACKS = 3
MAX_KNOWLEDGE_FILES = 100

Provider = Literal["openai", "anthropic", "google"]
Status = Literal["draft", "active", "inactive", "suspended"]
ModelName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
]
SystemPrompt = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SYSTEM_PROMPT_CHARS)]
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=128_000)]
TopP = Annotated[float, msgspec.Meta(ge=0, le=1)]
FileId = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                              r"[0-9a-fA-F]{12}$")
]  # fmt: skip
FileIds = Annotated[list[FileId], msgspec.Meta(max_length=MAX_KNOWLEDGE_FILES)]
ChunkSize = Annotated[int, msgspec.Meta(ge=100, le=8000)]
ChunkOverlap = Annotated[int, msgspec.Meta(ge=0, le=4000)]
TopK = Annotated[int, msgspec.Meta(ge=1, le=50)]
AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=10_000)]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
# USD per call, as a decimal string ("0.05"); a JSON number is read exactly from its text.
Price = Decimal


class Knowledge(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = False
    file_ids: FileIds = []
    chunk_size: ChunkSize = 1000
    chunk_overlap: ChunkOverlap = 200
    top_k: TopK = 5
    leak_guard: bool = False  # also withhold answers quoting the retrieved passages verbatim


class ModelTarget(msgspec.Struct, forbid_unknown_fields=True):
    provider: Provider
    model: ModelName


class AgentConfigBody(msgspec.Struct, forbid_unknown_fields=True):
    """The agent's secret configuration. Only its creator ever sees it."""

    system_prompt: SystemPrompt
    provider: Provider
    model: ModelName
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    top_p: TopP | None = None
    knowledge: Knowledge = msgspec.field(default_factory=Knowledge)
    fallbacks: Annotated[list[ModelTarget], msgspec.Meta(max_length=MAX_FALLBACKS)] = []
    leak_guard: bool = True
    # Anthropic `cache_control` on the agent's prompt: cheaper repeated calls on Anthropic
    # models (OpenAI and Gemini cache a repeated prompt by themselves).
    prompt_cache: bool = False


class KnowledgePatch(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool | UnsetType = UNSET
    file_ids: FileIds | UnsetType = UNSET
    chunk_size: ChunkSize | UnsetType = UNSET
    chunk_overlap: ChunkOverlap | UnsetType = UNSET
    top_k: TopK | UnsetType = UNSET
    leak_guard: bool | UnsetType = UNSET


class AgentConfigPatch(msgspec.Struct, forbid_unknown_fields=True):
    """A change to the config: fields left out keep their values; `null` resets a sampling
    parameter to the provider's default; `fallbacks`, when given, replaces the list."""

    system_prompt: SystemPrompt | UnsetType = UNSET
    provider: Provider | UnsetType = UNSET
    model: ModelName | UnsetType = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    max_tokens: MaxTokens | UnsetType | None = UNSET
    top_p: TopP | UnsetType | None = UNSET
    knowledge: KnowledgePatch | UnsetType = UNSET
    fallbacks: Annotated[list[ModelTarget], msgspec.Meta(max_length=MAX_FALLBACKS)] | UnsetType = (
        UNSET
    )
    leak_guard: bool | UnsetType = UNSET
    prompt_cache: bool | UnsetType = UNSET


class CreateAgentRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: AgentName
    price_per_call: Price
    config: AgentConfigBody
    description: Description | None = None
    category: Category | None = None


class UpdateAgentRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Partial: every field left out keeps its value. Each update makes a new version."""

    name: AgentName | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    category: Category | UnsetType | None = UNSET
    price_per_call: Price | UnsetType = UNSET
    config: AgentConfigPatch | UnsetType = UNSET


class ListAgentsQuery(PageQuery):
    status: Status | None = None


class AgentOut(msgspec.Struct):
    id: str
    name: str
    description: str | None
    category: str | None
    status: str
    price_per_call: str  # USD, a decimal string
    version: int
    total_calls: int
    average_rating: str
    review_count: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None


class AgentDetail(AgentOut):
    config: AgentConfigBody


class AgentList(msgspec.Struct):
    items: list[AgentOut]
    total: int
    page: int
    page_size: int


class VersionOut(msgspec.Struct):
    version: int
    name: str
    price_per_call: str
    created_at: datetime
    current: bool


class VersionDetail(VersionOut):
    description: str | None
    category: str | None
    config: AgentConfigBody


class VersionList(msgspec.Struct):
    items: list[VersionOut]  # newest first
    total: int
    page: int
    page_size: int
