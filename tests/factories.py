"""Test data made through the control plane's own repositories, as the API would make it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from common.domain import AdminRole, AgentConfig, KnowledgeSettings, ModelTarget
from control_plane.admin import repository as admin
from control_plane.agents import repository as agents
from control_plane.auth import repository as auth
from control_plane.creators import repository as creators
from control_plane.developers import repository as developers
from control_plane.reviews import repository as reviews
from control_plane.toolbox import repository as toolbox
from crypto.api_keys import generate_api_key, random_shard
from crypto.envelope import KeyRing
from tests.processes import TEST_KEYRING

__all__ = [
    "TEST_KEYRING",
    "Account",
    "AdminUser",
    "Agent",
    "ApiKey",
    "Developer",
    "add_to_toolbox",
    "agent_status",
    "make_account",
    "make_admin",
    "make_agent",
    "make_developer",
    "make_key",
    "make_review",
    "make_user",
    "revoke_key",
    "set_agent_status",
    "set_rate_tier",
    "set_user_status",
    "set_wallet",
    "shard_of",
    "use_trials",
]  # fmt: skip


@dataclass(frozen=True)
class Developer:
    user_id: str
    shard: int


async def _new_user(connection: asyncpg.Connection, user_type: str, tier: str) -> asyncpg.Record:
    return await auth.insert_user(
        connection,
        email=f"{uuid.uuid4().hex}@example.test",
        password_hash="x",
        user_type=user_type,
        shard=random_shard(),
        rate_tier=tier,
    )


async def make_user(db: asyncpg.Pool, user_type: str = "developer", *, tier: str = "free") -> str:
    async with db.acquire() as connection:
        return str((await _new_user(connection, user_type, tier))["id"])


async def make_developer(
    db: asyncpg.Pool, *, quota: int = 100, tier: str = "free", free_quota: int = 0
) -> Developer:
    async with db.acquire() as connection, connection.transaction():
        user = await _new_user(connection, "developer", tier)
        await auth.insert_quota(connection, user["id"], free_quota, total_quota=quota)
    return Developer(str(user["id"]), user["redis_shard"])


async def shard_of(db: asyncpg.Pool, user_id: str) -> int:
    """The Redis shard of an existing user (e.g. one registered through the API)."""
    async with db.acquire() as connection:
        user = await auth.user_by_id(connection, user_id)
    assert user is not None, user_id
    return int(user["redis_shard"])


async def set_user_status(db: asyncpg.Pool, user_id: str, status: str) -> None:
    """The user's status in Postgres only, as an admin's change writes it (Redis untouched)."""
    async with db.acquire() as connection:
        await admin.set_user_status(connection, user_id, status)


async def set_rate_tier(db: asyncpg.Pool, user_id: str, tier: str) -> None:
    async with db.acquire() as connection:
        await admin.set_user_rate_tier(connection, user_id, tier)


async def revoke_key(db: asyncpg.Pool, key_id: str) -> None:
    """The key revoked in Postgres only (its Redis record untouched)."""
    async with db.acquire() as connection:
        await developers.revoke_key(connection, key_id)


async def set_agent_status(db: asyncpg.Pool, agent_id: str, status: str) -> None:
    """The agent's status in Postgres only (its Redis record untouched)."""
    async with db.acquire() as connection:
        await agents.set_status(connection, agent_id, status)


async def set_wallet(db: asyncpg.Pool, creator_id: str, address: str) -> None:
    """A creator's payout wallet, as the creator's settings page writes it."""
    async with db.acquire() as connection:
        assert await creators.set_wallet_address(connection, creator_id, address)


@dataclass(frozen=True)
class AdminUser:
    user_id: str
    shard: int
    email: str


async def make_admin(
    db: asyncpg.Pool, role: AdminRole | None, *, password_hash: str = "x", shard: int | None = None
) -> AdminUser:
    """An admin made directly in the database: admins cannot self-register, so no repository
    writes one. `role` None: an admin whose role was never set."""
    email = f"{uuid.uuid4().hex}@example.test"
    shard = random_shard() if shard is None else shard
    row = await db.fetchrow(
        """INSERT INTO users (email, password_hash, user_type, admin_role, redis_shard)
           VALUES ($1, $2, 'admin', $3, $4) RETURNING id, redis_shard""",
        email, password_hash, role.value if role else None, shard,
    )  # fmt: skip
    assert row is not None
    return AdminUser(str(row["id"]), row["redis_shard"], email)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    plaintext: str
    key_hash: str


async def make_key(db: asyncpg.Pool, developer: Developer) -> ApiKey:
    generated = generate_api_key(developer.shard)
    async with db.acquire() as connection:
        key = await developers.insert_key(
            connection,
            user_id=developer.user_id,
            key_hash=generated.key_hash,
            prefix=generated.prefix,
            name="test",
        )
    return ApiKey(str(key["id"]), generated.plaintext, generated.key_hash)


@dataclass(frozen=True)
class Account:
    """A developer and an API key of theirs: who calls the gateway."""

    developer: Developer
    key: ApiKey


async def make_account(
    db: asyncpg.Pool, *, quota: int = 100, tier: str = "free", free_quota: int = 0
) -> Account:
    developer = await make_developer(db, quota=quota, tier=tier, free_quota=free_quota)
    return Account(developer, await make_key(db, developer))


@dataclass(frozen=True)
class Agent:
    agent_id: str
    creator_id: str
    config: AgentConfig
    price: Decimal


async def make_agent(
    db: asyncpg.Pool,
    *,
    system_prompt: str = "You are a careful assistant. SECRET-PROMPT-MARKER.",
    price: Decimal = Decimal("0.01"),
    status: str = "active",
    model: str = "mock-model",
    temperature: float | None = 0.3,
    keyring: KeyRing = TEST_KEYRING,
    provider: str = "openai",
    fallbacks: tuple[ModelTarget, ...] = (),
    leak_guard: bool = True,
    prompt_cache: bool = False,
    knowledge: KnowledgeSettings | None = None,
    name: str = "test agent",
    description: str = "for tests",
) -> Agent:
    creator_id = await make_user(db, "creator")
    agent_id = str(uuid.uuid4())
    config = AgentConfig(
        system_prompt=system_prompt,
        provider=provider,
        model=model,
        temperature=temperature,
        fallbacks=fallbacks,
        leak_guard=leak_guard,
        prompt_cache=prompt_cache,
        knowledge=knowledge or KnowledgeSettings(),
    )
    envelope = keyring.encrypt(config.to_json(), agent_id=agent_id, version=1)
    columns = {"name": name, "description": description, "category": None}
    async with db.acquire() as connection, connection.transaction():
        await agents.insert_agent(
            connection, agent_id=agent_id, creator_id=creator_id, envelope=envelope,
            key_id=keyring.active_key_id, price=price, **columns,
        )  # fmt: skip
        first = agents.Version(1, envelope, keyring.active_key_id, price, **columns)
        await agents.insert_version(connection, agent_id, first)
        if status != "draft":
            await agents.set_status(connection, agent_id, status)
    return Agent(agent_id, creator_id, config, price)


async def agent_status(db: asyncpg.Pool, agent_id: str) -> str:
    """The agent's status in Postgres, as the repository reads it."""
    async with db.acquire() as connection:
        row = await agents.agent(connection, agent_id)
    assert row is not None, agent_id
    return str(row["status"])


async def add_to_toolbox(db: asyncpg.Pool, developer: Developer, *agents: Agent) -> None:
    """Put agents in the developer's MCP toolbox, in this order."""
    for agent in agents:
        async with db.acquire() as connection:
            await toolbox.add(connection, developer.user_id, agent.agent_id)


async def use_trials(db: asyncpg.Pool, user_id: str, agent_id: str, calls: int = 3) -> None:
    """Record `calls` free trial calls of the agent as spent, as the worker records them (its
    upsert also counts one call at a time, so the row is written here; no repository has it)."""
    await db.execute(
        "INSERT INTO trial_usage (user_id, agent_id, calls_used) VALUES ($1, $2, $3)",
        user_id, agent_id, calls,
    )  # fmt: skip


async def make_review(
    db: asyncpg.Pool, agent_id: str, rating: int, content: str | None = None
) -> str:
    """A pending review of the agent by a new developer; returns its id."""
    user_id = await make_user(db)
    async with db.acquire() as connection:
        review = await reviews.insert_review(
            connection, agent_id=agent_id, user_id=user_id, rating=rating, content=content
        )
    return str(review["id"])
