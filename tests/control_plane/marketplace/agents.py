"""Marketplace agents written straight into the database with chosen listing fields."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import asyncpg

from common.domain import AgentConfig
from control_plane.agents import repository as agents_repository
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
    """One agent per dict (keys: the ListedAgent fields but id), with a real sealed config,
    written by the repository; the listing fields no request writes (status, counters,
    rating, featured, published_at) are then set as chosen."""
    made = [ListedAgent(id=str(uuid.uuid4()), **fields) for fields in agents]  # type: ignore[arg-type]
    config = AgentConfig(system_prompt=SECRET_PROMPT, provider="openai", model="mock-model")
    async with db.acquire() as connection, connection.transaction():
        for agent in made:
            envelope = TEST_KEYRING.encrypt(config.to_json(), agent_id=agent.id, version=1)
            await agents_repository.insert_agent(
                connection, agent_id=agent.id, creator_id=creator_id, name=agent.name,
                description=agent.description, category=agent.category, envelope=envelope,
                key_id=TEST_KEYRING.active_key_id, price=agent.price,
            )  # fmt: skip
        await connection.executemany(
            """UPDATE agents SET status = $2, total_calls = $3, rating_sum = $4,
                                 review_count = $5, featured = $6, published_at = $7
               WHERE id = $1""",
            [(a.id, a.status, a.total_calls, a.rating_sum, a.review_count, a.featured,
              a.published_at) for a in made],
        )  # fmt: skip
    return made


async def retire(db: asyncpg.Pool, agents: list[ListedAgent]) -> None:
    """Take agents off the marketplace, so later tests page through fewer."""
    await db.execute(
        "UPDATE agents SET status = 'inactive' WHERE id = ANY($1::uuid[])",
        [agent.id for agent in agents],
    )
