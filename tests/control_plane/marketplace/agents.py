"""Marketplace agents written straight into the database with chosen listing fields."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import asyncpg

from common.domain import AgentConfig
from control_plane.auth import repository as auth
from tests.factories import make_user
from tests.processes import TEST_KEYRING

SECRET_PROMPT = "MARKETPLACE-SECRET-PROMPT: never list me."


@dataclass(frozen=True)
class ListedAgent:
    id: str
    name: str
    description: str
    category: str | None
    price: Decimal
    status: str
    total_calls: int
    rating_sum: int
    review_count: int
    featured: bool
    published_at: datetime

    @property
    def average_rating(self) -> Decimal:
        """What Postgres computes: the mean rounded half away from zero to 2 places."""
        if self.review_count == 0:
            return Decimal(0)
        mean = Decimal(self.rating_sum) / Decimal(self.review_count)
        return mean.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def make_creator(db: asyncpg.Pool, display_name: str) -> str:
    creator_id = await make_user(db, "creator")
    async with db.acquire() as connection:
        await auth.insert_creator_profile(connection, creator_id, display_name)
    return creator_id


async def insert_agents(
    db: asyncpg.Pool, creator_id: str, agents: list[dict[str, object]]
) -> list[ListedAgent]:
    """One agent per dict (keys: the ListedAgent fields but id), with a real sealed config."""
    made: list[ListedAgent] = []
    rows = []
    for fields in agents:
        agent = ListedAgent(id=str(uuid.uuid4()), **fields)  # type: ignore[arg-type]
        config = AgentConfig(system_prompt=SECRET_PROMPT, provider="openai", model="mock-model")
        envelope = TEST_KEYRING.encrypt(config.to_json(), agent_id=agent.id, version=1)
        rows.append((
            agent.id, creator_id, agent.name, agent.description, agent.category, agent.status,
            envelope, TEST_KEYRING.active_key_id, agent.price, agent.total_calls,
            agent.rating_sum, agent.review_count, agent.featured, agent.published_at,
        ))  # fmt: skip
        made.append(agent)
    await db.executemany(
        """INSERT INTO agents (id, creator_id, name, description, category, status,
                               config_encrypted, config_key_id, price_per_call, total_calls,
                               rating_sum, review_count, featured, published_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
        rows,
    )
    return made


async def retire(db: asyncpg.Pool, agents: list[ListedAgent]) -> None:
    """Take agents off the marketplace, so later tests page through fewer."""
    await db.execute(
        "UPDATE agents SET status = 'inactive' WHERE id = ANY($1::uuid[])",
        [agent.id for agent in agents],
    )
