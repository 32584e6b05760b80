"""Helpers for the worker's tests: real usage events, and what Postgres says about them.

Events are made the way production makes them: `admit.lua` then `commit.lua` through the
gateway's `Admitter` (the records are loaded from Postgres on first use, as on a cold
gateway), or `reap.lua` through the reaper. Nothing is mocked.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import redis.asyncio as redis_asyncio

from common import keyspace
from common.redis_store import LuaScripts
from common.usage_events import CallStatus
from gateway.admission import Admission, AdmissionLimits, Admitter
from gateway.call_result import CallResult
from gateway.providers.base import Usage
from gateway.records import RecordLoader
from tests import support
from tests.factories import Account, Agent, make_account, make_agent

# Moved to tests/support.py; importable here still for tests written before the move.
wait_until = support.wait_until

UNIT_PRICE = Decimal("0.01")
TRIAL_CALLS = 3


def limits(reservation_ms: int = 60_000) -> AdmissionLimits:
    return AdmissionLimits(
        free_per_window=1_000_000,
        paid_per_window=1_000_000,
        window_ms=60_000,
        reservation_ms=reservation_ms,
        trial_calls=TRIAL_CALLS,
    )


@dataclass
class Expected:
    """What the calls made so far must add up to in Postgres, kept by `Producer.call`."""

    calls: set[str] = field(default_factory=set)
    billable: set[str] = field(default_factory=set)
    agent_calls: Counter[str] = field(default_factory=Counter)
    agent_revenue: dict[str, Decimal] = field(default_factory=dict)
    creator_earnings: dict[str, Decimal] = field(default_factory=dict)
    used_quota: Counter[str] = field(default_factory=Counter)
    trials: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(self, admission: Admission, agent: Agent, *, billable: bool) -> None:
        self.calls.add(admission.call_id)
        if not billable:
            return
        self.billable.add(admission.call_id)
        self.agent_calls[agent.agent_id] += 1
        if admission.charge == "trial":
            self.trials[(admission.user_id, agent.agent_id)] += 1
            return
        self.used_quota[admission.user_id] += admission.units
        revenue = self.agent_revenue.get(agent.agent_id, Decimal(0)) + agent.price
        self.agent_revenue[agent.agent_id] = revenue
        earned = self.creator_earnings.get(agent.creator_id, Decimal(0)) + agent.price
        self.creator_earnings[agent.creator_id] = earned


@dataclass(frozen=True)
class Calls:
    """One account's calls to one agent, and what they must add up to."""

    account: Account
    agent: Agent
    expected: Expected

    @property
    def shard(self) -> int:
        return self.account.developer.shard

    @property
    def stream(self) -> str:
        return keyspace.usage_stream(self.shard)

    @property
    def user_id(self) -> str:
        return self.account.developer.user_id


class Producer:
    def __init__(self, db: asyncpg.Pool, redis: redis_asyncio.Redis, scripts: LuaScripts) -> None:
        self.db = db
        self.redis = redis
        self.scripts = scripts
        loader = RecordLoader(db, redis, scripts, UNIT_PRICE)
        self.admitter = Admitter(scripts, loader, limits())
        self._loader = loader

    def admitter_with(self, reservation_ms: int) -> Admitter:
        return Admitter(self.scripts, self._loader, limits(reservation_ms))

    async def account(self, *, quota: int = 1000) -> Account:
        return await make_account(self.db, quota=quota, tier="paid")

    async def agent(self, price: Decimal = Decimal("0.01")) -> Agent:
        return await make_agent(self.db, price=price)

    async def calls(
        self, billable: Iterable[bool] = (), *, price: Decimal = Decimal("0.01")
    ) -> Calls:
        """A new account and agent, and one committed call per `billable` flag."""
        account = await self.account()
        agent = await self.agent(price)
        expected = Expected()
        for flag in billable:
            await self.call(account, agent, billable=flag, expected=expected)
        return Calls(account, agent, expected)

    async def admit(
        self,
        account: Account,
        agent: Agent,
        admitter: Admitter | None = None,
        *,
        request_id: str = "",
    ) -> Admission:
        return await (admitter or self.admitter).admit(
            account.key.key_hash, account.developer.shard, agent.agent_id, uuid.uuid4().hex,
            request_id=request_id,
        )  # fmt: skip

    async def call(
        self,
        account: Account,
        agent: Agent,
        *,
        billable: bool,
        status: str | None = None,
        expected: Expected | None = None,
        request_id: str | None = None,
    ) -> Admission:
        """One call, admitted and committed; `status` defaults to success/error."""
        admission = await self.admit(account, agent)
        if status is None:
            status = "success" if billable else "error"
        result = CallResult(
            CallStatus(status),
            billable=billable,
            http_status=200 if billable else 502,
            error_code="" if billable else "50201",
            usage=Usage(input_tokens=11, output_tokens=22 if billable else 0),
        )
        settled = await self.admitter.commit(
            admission,
            result,
            latency_ms=33,
            request_id=request_id or f"client-{admission.call_id[:8]}",
        )
        assert settled
        if expected is not None:
            expected.record(admission, agent, billable=billable)
        return admission


async def call_log_rows(db: asyncpg.Pool, user_ids: list[str]) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM call_logs WHERE user_id = ANY($1::uuid[]) ORDER BY created_at", user_ids
    )


async def assert_totals(
    db: asyncpg.Pool, expected: Expected, accounts: list[Account], agents: list[Agent]
) -> None:
    """Postgres holds every expected call exactly once and the aggregates match."""
    user_ids = [a.developer.user_id for a in accounts]
    rows = await call_log_rows(db, user_ids)
    request_ids = [row["request_id"] for row in rows]
    assert len(request_ids) == len(set(request_ids)), "a call was written twice"
    assert set(request_ids) == expected.calls
    assert {row["request_id"] for row in rows if row["billable"]} == expected.billable
    for agent in agents:
        totals = await db.fetchrow(
            "SELECT total_calls, total_revenue FROM agents WHERE id = $1", agent.agent_id
        )
        assert totals is not None
        assert totals["total_calls"] == expected.agent_calls[agent.agent_id]
        assert totals["total_revenue"] == expected.agent_revenue.get(agent.agent_id, 0)
        earned = await db.fetchval(
            "SELECT pending_earnings FROM creator_profiles WHERE user_id = $1", agent.creator_id
        )
        assert (earned or Decimal(0)) == expected.creator_earnings.get(agent.creator_id, 0)
        for account in accounts:
            used = await db.fetchval(
                "SELECT calls_used FROM trial_usage WHERE user_id = $1 AND agent_id = $2",
                account.developer.user_id,
                agent.agent_id,
            )
            pair = (account.developer.user_id, agent.agent_id)
            assert (used or 0) == min(TRIAL_CALLS, expected.trials[pair])
    for account in accounts:
        used_quota = await db.fetchval(
            "SELECT used_quota FROM quotas WHERE user_id = $1", account.developer.user_id
        )
        assert used_quota == expected.used_quota[account.developer.user_id]


async def assert_written_once(db: asyncpg.Pool, calls: Calls) -> None:
    await assert_totals(db, calls.expected, [calls.account], [calls.agent])


async def live_quota(redis: redis_asyncio.Redis, account: Account) -> int | None:
    """The developer's live quota in Redis; None before the gateway ever loaded it."""
    value: Any = await redis.get(keyspace.quota(account.developer.shard, account.developer.user_id))
    return None if value is None else int(value)


Entry = tuple[bytes, dict[bytes, bytes]]


async def stream_entries(redis: redis_asyncio.Redis, shard: int) -> list[Entry]:
    return await entries_of(redis, keyspace.usage_stream(shard))


async def entries_of(redis: redis_asyncio.Redis, stream: str, *, newest: int = 0) -> list[Entry]:
    """Every entry of `stream`, oldest first; or its `newest` ones, newest first."""
    reply: Any = await (redis.xrevrange(stream, count=newest) if newest else redis.xrange(stream))
    return [(entry_id, dict(fields)) for entry_id, fields in reply]


async def has_rows(db: asyncpg.Pool, account: Account, count: int) -> bool:
    return len(await call_log_rows(db, [account.developer.user_id])) >= count
