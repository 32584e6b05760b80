"""What an agent's fields and config must be before they are stored (seed property 11 for
prices); every refusal is a 400 naming the field."""

from __future__ import annotations

from decimal import Decimal

from common.db import DbConnection
from common.domain import AgentConfig
from common.validation import has_control_characters, invalid, shown_name
from control_plane.agents import repository
from control_plane.settings import ApiSettings

_MICRO = Decimal("0.000001")  # prices are stored with 6 decimals (exact micro-dollars)


def name(raw: str) -> str:
    return shown_name("name", raw)


def description(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    if has_control_characters(raw, allow_newlines=True):
        raise invalid("description", "Control characters other than line breaks are not allowed.")
    return raw


def category(raw: str | None) -> str | None:
    """Categories are matched exactly by the marketplace, so they are stored normalised:
    trimmed, lower case, single spaces."""
    if raw is None:
        return None
    category = " ".join(raw.split()).lower()
    if not 1 <= len(category) <= 50:
        raise invalid("category", "Expected 1 to 50 characters besides spaces.")
    if has_control_characters(category):
        raise invalid("category", "Control characters are not allowed.")
    return category


def validate_price(raw: Decimal, minimum: Decimal, maximum: Decimal) -> Decimal:
    """Seed property 11: a price is accepted exactly when it lies in [minimum, maximum]; it
    must also be a whole number of micro-dollars, what the database and Redis hold exactly."""
    if not raw.is_finite() or not minimum <= raw <= maximum:
        raise invalid("price_per_call", f"Expected a price from {minimum} to {maximum} USD.")
    if raw != raw.quantize(_MICRO):
        raise invalid("price_per_call", "Expected at most 6 decimal places.")
    return raw.quantize(_MICRO)


def price(raw: Decimal, settings: ApiSettings) -> Decimal:
    """A price within the platform's AGENT_PRICE_MIN_USD..AGENT_PRICE_MAX_USD."""
    return validate_price(raw, settings.price_min, settings.price_max)


def check_config(config: AgentConfig) -> None:
    if not config.system_prompt.strip():
        raise invalid("config.system_prompt", "The system prompt cannot be blank.")
    targets = [(config.provider, config.model)]
    for target in config.fallbacks:
        pair = (target.provider, target.model)
        if pair in targets:
            raise invalid(
                "config.fallbacks", "Each fallback must differ from the model and the others."
            )
        targets.append(pair)
    knowledge = config.knowledge
    if knowledge.chunk_overlap >= knowledge.chunk_size:
        raise invalid("config.knowledge.chunk_overlap", "Expected less than chunk_size.")
    if len(set(knowledge.file_ids)) != len(knowledge.file_ids):
        raise invalid("config.knowledge.file_ids", "A file is listed more than once.")


async def check_files(connection: DbConnection, agent_id: str, config: AgentConfig) -> None:
    wanted = list(config.knowledge.file_ids)
    if not wanted:
        return
    known = await repository.knowledge_file_ids(connection, agent_id, wanted)
    if len(known) != len(wanted):
        raise invalid(
            "config.knowledge.file_ids", "Every file must belong to this agent's knowledge base."
        )
