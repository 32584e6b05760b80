"""Settlements: accruals from real ingestion, settled per (creator, period): property 15, the
late-arrival rule, idempotence under concurrent workers, and a settlement killed halfway."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.earnings.money import period_end_at_or_before, settlement_fee
from control_plane.earnings.settlements import settle_due
from tests.control_plane.earnings.helpers import (
    after_periods,
    balances,
    caller,
    creator_revenue,
    earnings_settings,
    event,
    ingest,
    priced_agent,
)
from tests.support import wait_until

prices = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("100"), places=6)
percents = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=2)


async def settlements_of(db: asyncpg.Pool, creator_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM settlements WHERE creator_id = $1 ORDER BY period_end", creator_id
    )


@settings(max_examples=15, deadline=None)
@given(
    agent_prices=st.lists(prices, min_size=1, max_size=3),
    calls=st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=25),
    fee_percent=percents,
)
async def test_property_15_settlement_calculation_accuracy(
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    agent_prices: list[Decimal],
    calls: list[tuple[int, bool]],
    fee_percent: Decimal,
) -> None:
    """Property 15: for any period, the creator's settled earnings equal the sum of the
    revenue of their billable calls in call_logs minus the platform fee percentage; the net
    moves from pending to available, to the last of eight decimals."""
    config = earnings_settings(PLATFORM_FEE_PERCENT=str(fee_percent))
    agents = [await priced_agent(db_pool, str(price)) for price in agent_prices]
    developer = await caller(db_pool)
    events = [
        event(developer, agents[index % len(agents)], billable=billable)
        for index, billable in calls
    ]
    await ingest(db_pool, redis, events)

    for agent in agents:
        revenue = await creator_revenue(db_pool, agent.creator_id)
        expected_revenue = sum(
            (agent.price for i, b in calls if b and agents[i % len(agents)] is agent), Decimal(0)
        )
        assert revenue == expected_revenue
        assert (await balances(db_pool, agent.creator_id))["pending_earnings"] == revenue

        run = await settle_due(
            db_pool, config, now=after_periods(1, config), creator_id=agent.creator_id
        )
        rows = await settlements_of(db_pool, agent.creator_id)
        if revenue == 0:
            assert rows == []
            assert run.settlements == []
            continue
        [settlement] = rows
        fee = (revenue * fee_percent / 100).quantize(Decimal("0.00000001"))
        assert abs(settlement["platform_fee"] - fee) <= Decimal("0.00000001")
        assert settlement["amount"] == revenue
        assert settlement["platform_fee"] == settlement_fee(revenue, fee_percent)
        assert settlement["net_amount"] == revenue - settlement["platform_fee"]
        assert settlement["calls"] == sum(
            1 for i, b in calls if b and agents[i % len(agents)] is agent
        )
        after = await balances(db_pool, agent.creator_id)
        assert after["pending_earnings"] == 0
        assert after["available_balance"] == settlement["net_amount"]
        assert after["total_earnings"] == settlement["net_amount"]


async def test_late_usage_lands_in_the_next_period_once(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """An event for a call made in an already settled period (the worker was behind) is
    settled with the next period: nothing lost, nothing counted twice."""
    config = earnings_settings()
    agent = await priced_agent(db_pool, "0.5")
    developer = await caller(db_pool)
    await ingest(db_pool, redis, [event(developer, agent) for _ in range(3)])
    first = await settle_due(
        db_pool, config, now=after_periods(1, config), creator_id=agent.creator_id
    )
    assert [s.gross for s in first.settlements] == [Decimal("1.5")]

    # Two calls made before the first settlement's period ended, written only now.
    late_at = first.settlements[0].period_end - timedelta(hours=2)
    await ingest(db_pool, redis, [event(developer, agent, at=late_at) for _ in range(2)])
    pending = (await balances(db_pool, agent.creator_id))["pending_earnings"]
    assert pending == Decimal("1.0")
    again = await settle_due(
        db_pool, config, now=after_periods(1, config), creator_id=agent.creator_id
    )
    assert again.settlements == []  # the period they belong to by call time is closed

    second = await settle_due(
        db_pool, config, now=after_periods(2, config), creator_id=agent.creator_id
    )
    assert [s.gross for s in second.settlements] == [Decimal("1.0")]
    rows = await settlements_of(db_pool, agent.creator_id)
    assert [row["amount"] for row in rows] == [Decimal("1.5"), Decimal("1.0")]
    assert rows[0]["period_end"] == rows[1]["period_start"]
    assert sum(row["amount"] for row in rows) == await creator_revenue(db_pool, agent.creator_id)
    after = await balances(db_pool, agent.creator_id)
    assert after["pending_earnings"] == 0
    assert after["available_balance"] == sum(row["net_amount"] for row in rows)


async def test_two_workers_at_once_make_one_settlement(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    config = earnings_settings()
    agents = [await priced_agent(db_pool, "0.25") for _ in range(3)]
    developer = await caller(db_pool)
    await ingest(db_pool, redis, [event(developer, a) for a in agents for _ in range(4)])
    now = after_periods(1, config)

    runs = await asyncio.gather(
        *(settle_due(db_pool, config, now=now, creator_id=a.creator_id) for a in agents * 4)
    )

    assert sum(len(run.settlements) for run in runs) == 3
    for agent in agents:
        [row] = await settlements_of(db_pool, agent.creator_id)
        assert row["amount"] == Decimal("1.00")
        after = await balances(db_pool, agent.creator_id)
        assert (after["pending_earnings"], after["available_balance"]) == (0, row["net_amount"])
    # Running again is a no-op.
    for agent in agents:
        rerun = await settle_due(db_pool, config, now=now, creator_id=agent.creator_id)
        assert rerun.settlements == []


async def test_ingestion_racing_settlements_loses_and_doubles_nothing(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """Usage written while settlements run: every call's revenue is settled exactly once or
    still pending, and pending always equals the unsettled accruals."""
    config = earnings_settings()
    agent = await priced_agent(db_pool, "0.01")
    developer = await caller(db_pool)
    stop = asyncio.Event()

    async def keep_ingesting() -> None:
        while not stop.is_set():
            await ingest(db_pool, redis, [event(developer, agent) for _ in range(5)])

    async def keep_settling() -> None:
        for periods in range(1, 9):
            await settle_due(
                db_pool, config, now=after_periods(periods, config), creator_id=agent.creator_id
            )
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(keep_ingesting())
    await asyncio.gather(keep_settling(), keep_settling())
    stop.set()
    await writer

    revenue = await creator_revenue(db_pool, agent.creator_id)
    settled = sum(
        (r["amount"] for r in await settlements_of(db_pool, agent.creator_id)), Decimal(0)
    )
    after = await balances(db_pool, agent.creator_id)
    assert settled + after["pending_earnings"] == revenue
    unsettled = await db_pool.fetchval(
        """SELECT coalesce(sum(gross), 0) FROM earnings_accruals
           WHERE creator_id = $1 AND settlement_id IS NULL""",
        agent.creator_id,
    )
    assert unsettled == after["pending_earnings"]
    stamped = await db_pool.fetchval(
        """SELECT coalesce(sum(e.gross), 0) FROM earnings_accruals e
           WHERE e.creator_id = $1 AND e.settlement_id IS NOT NULL""",
        agent.creator_id,
    )
    assert stamped == settled


async def test_a_settlement_killed_halfway_leaves_nothing_and_reruns_once(
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, database_url: str
) -> None:
    """The settling connection dies after it locked and computed everything and while it was
    inserting the settlement: its transaction rolls back whole, and the next run settles
    exactly once."""
    config = earnings_settings()
    agent = await priced_agent(db_pool, "2")
    developer = await caller(db_pool)
    await ingest(db_pool, redis, [event(developer, agent) for _ in range(2)])
    now = after_periods(1, config)
    end = period_end_at_or_before(now, config.settlement_period_hours)
    start = end - timedelta(hours=config.settlement_period_hours)

    # An uncommitted settlement row with the same key makes the job's INSERT wait on the
    # unique index: the job is then stopped exactly between its locks and its writes.
    blocker = await asyncpg.connect(database_url)
    blocking = blocker.transaction()
    await blocking.start()
    await blocker.execute(
        """INSERT INTO settlements (creator_id, period_start, period_end, amount,
                                    platform_fee, net_amount)
           VALUES ($1, $2, $3, 0, 0, 0)""",
        agent.creator_id,
        start,
        end,
    )
    job = asyncio.create_task(settle_due(db_pool, config, now=now, creator_id=agent.creator_id))

    async def job_waits() -> bool:
        count: int = await db_pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO settlements%'
                 AND pid <> $1""",
            blocker.get_server_pid(),
        )
        return count > 0

    await wait_until(job_waits, 10, "the settlement to block on its insert")
    await db_pool.execute(
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO settlements%'
             AND pid <> $1""",
        blocker.get_server_pid(),
    )
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
        await job
    await blocking.rollback()
    await blocker.close()

    assert await settlements_of(db_pool, agent.creator_id) == []
    assert (await balances(db_pool, agent.creator_id))["pending_earnings"] == Decimal(4)
    run = await settle_due(db_pool, config, now=now, creator_id=agent.creator_id)
    assert [s.gross for s in run.settlements] == [Decimal(4)]
    after = await balances(db_pool, agent.creator_id)
    assert after["pending_earnings"] == 0
    assert after["available_balance"] == Decimal("3.2")


def test_periods_are_aligned_and_utc() -> None:
    config = earnings_settings(SETTLEMENT_PERIOD_HOURS="24")
    moment = datetime(2026, 3, 5, 13, 45, tzinfo=UTC)
    assert period_end_at_or_before(moment, 24) == datetime(2026, 3, 5, tzinfo=UTC)
    assert period_end_at_or_before(moment, 6) == datetime(2026, 3, 5, 12, tzinfo=UTC)
    assert config.settlement_period_hours == 24
