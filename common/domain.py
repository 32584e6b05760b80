"""Domain types both apps share: roles and statuses, the agent config, and quota units.

Money is `Decimal` everywhere in Python (NUMERIC in SQL, integer micro-units in Redis).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

import orjson

MICROS_PER_DOLLAR = 1_000_000


class UserType(StrEnum):
    CREATOR = "creator"
    DEVELOPER = "developer"
    ADMIN = "admin"


class AdminRole(StrEnum):
    SUPER_ADMIN = "super_admin"
    MODERATOR = "moderator"
    SUPPORT = "support"


class UserStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


class RateTier(StrEnum):
    FREE = "free"
    PAID = "paid"


class AgentStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"


def units_for_price(price_per_call: Decimal, unit_price: Decimal) -> int:
    """Quota units one call costs: `max(1, round(price / UNIT_PRICE))`, half rounding up.

    A standard agent (price == unit price) costs exactly one unit; a premium agent cannot be
    called below its price, and nothing is ever free.
    """
    if price_per_call <= 0 or unit_price <= 0:
        raise ValueError("prices must be positive")
    units = (price_per_call / unit_price).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(1, int(units))


def to_micros(amount: Decimal) -> int:
    """Dollars to integer micro-dollars (what Redis holds), refusing sub-micro precision."""
    micros = amount * MICROS_PER_DOLLAR
    if micros != micros.to_integral_value():
        raise ValueError("amount has more precision than a micro-dollar")
    return int(micros)


@dataclass(frozen=True, slots=True)
class KnowledgeSettings:
    enabled: bool = False
    file_ids: tuple[str, ...] = ()
    chunk_size: int = 1000
    chunk_overlap: int = 200
    top_k: int = 5
    # Guard the answer against verbatim runs of the injected passages, like the prompt.
    leak_guard: bool = False


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """A provider and model to call; an agent has one primary and optional fallbacks."""

    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The secret part of an agent: what is encrypted at rest and decrypted only in memory."""

    system_prompt: str
    provider: str
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings)
    fallbacks: tuple[ModelTarget, ...] = ()
    leak_guard: bool = True
    # Mark the prompt for the provider's prompt cache where that takes a mark (Anthropic's
    # `cache_control`); OpenAI and Gemini cache a repeated prefix without one.
    prompt_cache: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> AgentConfig:
        """A stored config. A field this code does not know (written by a newer control
        plane during a rolling deploy) is ignored, so an older gateway still serves it."""
        data: dict[str, Any] = orjson.loads(raw)
        knowledge = data.pop("knowledge", None) or {}
        knowledge["file_ids"] = tuple(knowledge.get("file_ids", ()))
        fallbacks = tuple(ModelTarget(**item) for item in data.pop("fallbacks", None) or ())
        known = _CONFIG_FIELDS
        return cls(
            knowledge=KnowledgeSettings(**{k: v for k, v in knowledge.items() if k in _KNOWLEDGE}),
            fallbacks=fallbacks,
            **{name: value for name, value in data.items() if name in known},
        )


_CONFIG_FIELDS = frozenset(f.name for f in fields(AgentConfig))
_KNOWLEDGE = frozenset(f.name for f in fields(KnowledgeSettings))
