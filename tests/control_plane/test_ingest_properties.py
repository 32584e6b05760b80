"""Property tests of ingestion: any mix of billable, failing and trial calls, written in any
batch size and redelivered after a crash, adds up in Postgres to exactly what Redis charged."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections import Counter
from decimal import Decimal
from unittest import mock

import asyncpg
import redis.asyncio as redis_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.settings import UsageIngestSettings
from control_plane.usage_ingest import StreamEntry, UsageIngester, ingest_once
from tests.control_plane.helpers import (
    TRIAL_CALLS,
    Expected,
    Producer,
    assert_totals,
    call_log_rows,
    live_quota,
)

QUOTA = 200
PRICES = (Decimal("0.01"), Decimal("0.035"))  # 1 unit and 4 units (3.5 rounds half up)
UNITS = {Decimal("0.01"): 1, Decimal("0.035"): 4}
# How a call ends: (status, billable). A client that hung up after a 2xx is billed.
OUTCOMES = {
    "success": ("success", True),
    "cancelled_after_2xx": ("cancelled", True),
    "upstream_error": ("error", False),
    "timeout": ("timeout", False),
    "blocked": ("blocked", False),
}

calls = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from(sorted(OUTCOMES))),
    min_size=1,
    max_size=30,
)


@settings(max_examples=12, deadline=None)
@given(calls=calls, batch_max=st.integers(1, 12), crash_before_ack=st.booleans())
async def test_property_3_quota_consistency_through_ingestion(  # noqa: PLR0917
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    producer: Producer,
    calls: list[tuple[int, int, str]],
    batch_max: int,
    crash_before_ack: bool,
) -> None:
    """Property 3: Quota Consistency (with 4: Failed Calls Don't Cost Quota, and 25: Trial
    Quota Enforcement). After ingestion, for every developer the quota Postgres holds as
    used equals what Redis charged (total - used == live balance), the billable call logs are
    exactly the successful calls, each agent's totals and its creator's earnings are the sums
    of its calls' prices, and no developer-agent pair used more than 3 trials."""
    await ingest_once(redis, db_pool)  # start from drained streams
    accounts = [await producer.account(quota=QUOTA) for _ in range(2)]
    agents = [await producer.agent(price) for price in PRICES]
    expected = Expected()
    trials: Counter[tuple[int, int]] = Counter()
    for account_index, agent_index, outcome in calls:
        status, billable = OUTCOMES[outcome]
        account, agent = accounts[account_index], agents[agent_index]
        admission = await producer.call(
            account, agent, billable=billable, status=status, expected=expected
        )
        # The model: the first 3 calls of a pair that are not given back are free trials.
        pair = (account_index, agent_index)
        if trials[pair] < TRIAL_CALLS:
            assert admission.charge == "trial"
            trials[pair] += billable
        else:
            assert (admission.charge, admission.units) == ("quota", UNITS[agent.price])

    config = dataclasses.replace(UsageIngestSettings.from_env({}), batch_max=batch_max)
    ingester = UsageIngester(redis, db_pool, settings=config, consumer=f"p-{uuid.uuid4().hex}")
    await ingester.ensure_groups()
    if crash_before_ack:
        # The first batch commits to Postgres and the process dies before XACK; a survivor
        # takes the entries over and writes them again.
        acknowledge = ingester._acknowledge
        crashed = False

        async def crash_once(entries: list[StreamEntry]) -> None:
            nonlocal crashed
            if not crashed:
                crashed = True
                raise ConnectionError("died before XACK")
            await acknowledge(entries)

        with (
            mock.patch.object(ingester, "_acknowledge", crash_once),
            contextlib.suppress(ConnectionError),
        ):
            await ingester.drain()
        survivor = UsageIngester(redis, db_pool, settings=config, consumer=f"s-{uuid.uuid4()}")
        await survivor.claim_stale(min_idle_ms=0)
    await ingester.drain()

    await assert_totals(db_pool, expected, accounts, agents)
    for account in accounts:
        balance = await db_pool.fetchval(
            "SELECT total_quota + free_quota - used_quota FROM quotas WHERE user_id = $1",
            account.developer.user_id,
        )
        live = await live_quota(redis, account)  # None: never called, never loaded
        assert balance == (QUOTA if live is None else live)
    rows = await call_log_rows(db_pool, [a.developer.user_id for a in accounts])
    assert len(rows) == len(calls)
    assert sum(row["billable"] for row in rows) == sum(OUTCOMES[c[2]][1] for c in calls)
    for row in rows:
        if not row["billable"]:
            assert (row["units"], row["cost_usd"]) == (0, 0)
    assert all(count <= TRIAL_CALLS for count in trials.values())
