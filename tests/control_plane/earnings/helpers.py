"""Helpers for the money-out tests: usage written through the worker's real ingestion SQL
(so call_logs, pending earnings and accruals move exactly as in production), and balances."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import redis.asyncio as redis_asyncio

from common.usage_events import UsageEvent
from control_plane.earnings.settings import EarningsSettings
from control_plane.usage_ingest import UsageIngester
from tests.factories import Agent, ApiKey, Developer, make_agent, make_developer, make_key


def earnings_settings(**overrides: str) -> EarningsSettings:
    return EarningsSettings.from_env({"SETTLEMENT_GRACE_S": "0", **overrides})


@dataclass(frozen=True)
class Caller:
    developer: Developer
    key: ApiKey


async def caller(db: asyncpg.Pool) -> Caller:
    developer = await make_developer(db, quota=1_000_000, tier="paid")
    return Caller(developer, await make_key(db, developer))


def event(
    caller: Caller,
    agent: Agent,
    *,
    billable: bool = True,
    status: str | None = None,
    at: datetime | None = None,
    latency_ms: int = 40,
) -> UsageEvent:
    moment = at or datetime.now(UTC)
    return UsageEvent(
        call_id=uuid.uuid4().hex,
        request_id="",
        user_id=caller.developer.user_id,
        key_id=caller.key.key_id,
        agent_id=agent.agent_id,
        agent_version=1,
        charge="quota",
        units=1 if billable else 0,
        billable=billable,
        status=status or ("success" if billable else "error"),
        input_tokens=5,
        output_tokens=7 if billable else 0,
        latency_ms=latency_ms,
        error_code="" if billable else "50201",
        ts_ms=int(moment.timestamp() * 1000),
    )


async def ingest(
    db: asyncpg.Pool, redis: redis_asyncio.Redis, events: list[UsageEvent]
) -> tuple[int, int]:
    """Write events as the worker does (one transaction per call of this)."""
    return await UsageIngester(redis, db).write_events(events)


async def priced_agent(db: asyncpg.Pool, price: str) -> Agent:
    return await make_agent(db, price=Decimal(price))


async def agent_of(db: asyncpg.Pool, creator_id: str, price: str = "0.01") -> Agent:
    """An agent of an existing creator."""
    agent = await make_agent(db, price=Decimal(price))
    await db.execute("UPDATE agents SET creator_id = $2 WHERE id = $1", agent.agent_id, creator_id)
    return Agent(agent.agent_id, creator_id, agent.config, agent.price)


async def creator_revenue(db: asyncpg.Pool, creator_id: str) -> Decimal:
    """What call_logs say the creator earned (gross), all time."""
    value: Decimal = await db.fetchval(
        """SELECT coalesce(sum(c.cost_usd), 0) FROM call_logs c
           JOIN agents a ON a.id = c.agent_id
           WHERE a.creator_id = $1 AND c.billable""",
        creator_id,
    )
    return value


async def balances(db: asyncpg.Pool, creator_id: str) -> asyncpg.Record:
    row = await db.fetchrow(
        """SELECT coalesce(p.pending_earnings, 0) AS pending_earnings,
                  coalesce(p.available_balance, 0) AS available_balance,
                  coalesce(p.total_earnings, 0) AS total_earnings
           FROM users u LEFT JOIN creator_profiles p ON p.user_id = u.id WHERE u.id = $1""",
        creator_id,
    )
    assert row is not None
    return row


async def fund(db: asyncpg.Pool, creator_id: str, amount: Decimal) -> None:
    """Give a creator an available balance (as a settlement would)."""
    await db.execute(
        """INSERT INTO creator_profiles (user_id, display_name, available_balance)
           VALUES ($1, 'creator', $2)
           ON CONFLICT (user_id) DO UPDATE
               SET available_balance = creator_profiles.available_balance + $2""",
        creator_id,
        amount,
    )


async def make_withdrawal_due(db: asyncpg.Pool, withdrawal_id: str) -> None:
    """The withdrawal's retry back-off is over: the next payout run takes it."""
    await db.execute("UPDATE withdrawals SET next_attempt_at = now() WHERE id = $1", withdrawal_id)


def after_periods(periods: int, settings: EarningsSettings) -> datetime:
    """A moment `periods` settlement periods from now (the job takes `now` as an argument)."""
    return datetime.now(UTC) + timedelta(hours=settings.settlement_period_hours * periods)


def unique_suffix() -> str:
    return f"{time.monotonic_ns()}"
