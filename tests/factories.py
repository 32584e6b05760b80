"""Test data made through the database layer, as the control plane would make it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from common.domain import AgentConfig, KnowledgeSettings, ModelTarget
from crypto.api_keys import generate_api_key, random_shard
from crypto.envelope import KeyRing
from tests.processes import TEST_KEYRING


@dataclass(frozen=True)
class Developer:
    user_id: str
    shard: int


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    plaintext: str
    key_hash: str


@dataclass(frozen=True)
class Agent:
    agent_id: str
    creator_id: str
    config: AgentConfig
    price: Decimal


async def make_user(db: asyncpg.Pool, user_type: str = "developer", *, tier: str = "free") -> str:
    user_id = await db.fetchval(
        """INSERT INTO users (email, password_hash, user_type, redis_shard, rate_tier)
           VALUES ($1, 'x', $2, $3, $4) RETURNING id""",
        f"{uuid.uuid4().hex}@example.test",
        user_type,
        random_shard(),
        tier,
    )
    return str(user_id)


async def make_developer(
    db: asyncpg.Pool, *, quota: int = 100, tier: str = "free", free_quota: int = 0
) -> Developer:
    user_id = await make_user(db, "developer", tier=tier)
    await db.execute(
        "INSERT INTO quotas (user_id, total_quota, free_quota) VALUES ($1, $2, $3)",
        user_id,
        quota,
        free_quota,
    )
    shard = await db.fetchval("SELECT redis_shard FROM users WHERE id = $1", user_id)
    return Developer(user_id, shard)


async def make_key(db: asyncpg.Pool, developer: Developer) -> ApiKey:
    generated = generate_api_key(developer.shard)
    key_id = await db.fetchval(
        """INSERT INTO api_keys (user_id, key_hash, key_prefix, name)
           VALUES ($1, $2, $3, 'test') RETURNING id""",
        developer.user_id,
        generated.key_hash,
        generated.prefix,
    )
    return ApiKey(str(key_id), generated.plaintext, generated.key_hash)


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
    knowledge: KnowledgeSettings | None = None,
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
        knowledge=knowledge or KnowledgeSettings(),
    )
    envelope = keyring.encrypt(config.to_json(), agent_id=agent_id, version=1)
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO agents (id, creator_id, name, description, status, config_encrypted,
                                   config_key_id, price_per_call, version, published_at)
               VALUES ($1, $2, 'test agent', 'for tests', $3, $4, $5, $6, 1,
                       CASE WHEN $3 = 'active' THEN now() END)""",
            agent_id,
            creator_id,
            status,
            envelope,
            keyring.active_key_id,
            price,
        )
        await connection.execute(
            """INSERT INTO agent_versions (agent_id, version, config_encrypted, config_key_id,
                                           price_per_call, name)
               VALUES ($1, 1, $2, $3, $4, 'test agent')""",
            agent_id,
            envelope,
            keyring.active_key_id,
            price,
        )
    return Agent(agent_id, creator_id, config, price)
