"""Creator analytics and developer usage from the rollups, checked against call_logs itself:
property 31, distinct developers, latency percentiles, and exact developer ranges."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.analytics import histogram
from tests.control_plane.api_client import assert_error, bearer, register
from tests.control_plane.earnings.helpers import Caller, agent_of, caller, event, ingest
from tests.factories import Developer, make_key, shard_of

DAY0 = datetime(2026, 2, 10, tzinfo=UTC)  # a fixed past window: nothing else writes there


async def test_the_sql_and_python_histograms_agree(db_pool: asyncpg.Pool) -> None:
    assert list(await db_pool.fetchval("SELECT latency_bucket_bounds()")) == list(histogram.BOUNDS)
    samples = [
        0,
        1,
        2,
        9,
        10,
        11,
        999,
        1024,
        311743,
        311744,
        10**7,
        *random.sample(range(10**6), 300),
    ]
    sql = await db_pool.fetchval("SELECT latency_histogram($1::int[])", samples)
    python = [0] * histogram.SIZE
    for sample in samples:
        python[histogram.bucket_of(sample)] += 1
    assert list(sql) == python


@settings(max_examples=60, deadline=None)
@given(latencies=st.lists(st.integers(0, 400_000), min_size=1, max_size=200),
       quantile=st.sampled_from([0.5, 0.95, 0.99]))  # fmt: skip
def test_percentiles_from_histograms_fall_in_the_exact_percentiles_bucket(
    latencies: list[int], quantile: float
) -> None:
    counts = [0] * histogram.SIZE
    for latency in latencies:
        counts[histogram.bucket_of(latency)] += 1
    exact = sorted(latencies)[max(1, -(-int(quantile * 1000) * len(latencies) // 1000)) - 1]
    estimate = histogram.percentile(counts, quantile)
    assert estimate is not None
    assert histogram.bucket_of(estimate) == histogram.bucket_of(exact)


async def creator(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    session = await register(client, "creator")
    return session["user"]["id"], bearer(session["access_token"])


calls_strategy = st.lists(
    st.tuples(
        st.integers(0, 1),  # agent
        st.integers(0, 2),  # developer
        st.integers(0, 3 * 24 * 60 - 1),  # minute of the three days
        st.sampled_from(["success", "success", "error", "timeout", "cancelled"]),
        st.integers(1, 5000),  # latency
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=10, deadline=None)
@given(calls=calls_strategy, window=st.tuples(st.integers(0, 71), st.integers(1, 72)),
       granularity=st.sampled_from(["day", "hour"]))  # fmt: skip
async def test_property_31_analytics_data_accuracy(  # noqa: PLR0917
    module_client: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    calls: list[tuple[int, int, int, str, int]],
    window: tuple[int, int],
    granularity: str,
) -> None:
    """Property 31: for any period, the call volume shown equals the number of call logs in
    that period, and so do billable calls, errors, revenue and distinct developers; the
    percentiles are those of the period's latencies (within their histogram bucket)."""
    creator_id, headers = await creator(module_client)
    agents = [await agent_of(db_pool, creator_id, price) for price in ("0.02", "1.5")]
    developers = [await caller(db_pool) for _ in range(3)]
    events = []
    for agent_index, developer_index, minute, status, latency in calls:
        billable = status in ("success", "cancelled")
        events.append(
            event(developers[developer_index], agents[agent_index], billable=billable,
                  status=status, at=DAY0 + timedelta(minutes=minute), latency_ms=latency)
        )  # fmt: skip
    await ingest(db_pool, redis, events)

    first, length = window
    start = DAY0 + timedelta(hours=first)
    end = start + timedelta(hours=length)
    params = {"from": start.isoformat(), "to": end.isoformat(), "granularity": granularity}
    response = await module_client.get(
        "/api/v1/creators/me/analytics", params=params, headers=headers
    )
    assert response.status_code == 200, response.text
    report = response.json()
    shown_from = datetime.fromisoformat(report["from"])
    shown_to = datetime.fromisoformat(report["to"])
    assert shown_from <= start < end <= shown_to  # widened to whole buckets

    exact = await db_pool.fetchrow(
        """SELECT count(*) AS calls, count(*) FILTER (WHERE billable) AS billable,
                  count(*) FILTER (WHERE status IN ('error', 'timeout', 'blocked')) AS errors,
                  coalesce(sum(cost_usd), 0) AS revenue, count(DISTINCT user_id) AS developers,
                  percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms)
                      FILTER (WHERE status = 'success') AS p50,
                  percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
                      FILTER (WHERE status = 'success') AS p95
           FROM call_logs WHERE agent_id = ANY($1::uuid[]) AND created_at >= $2
             AND created_at < $3""",
        [a.agent_id for a in agents],
        shown_from,
        shown_to,
    )
    totals = report["totals"]
    assert totals["calls"] == exact["calls"]
    assert totals["billable_calls"] == exact["billable"]
    assert totals["errors"] == exact["errors"]
    assert Decimal(totals["revenue"]) == exact["revenue"]
    assert totals["unique_developers"] == exact["developers"]
    for name, value in (("latency_p50_ms", exact["p50"]), ("latency_p95_ms", exact["p95"])):
        if value is None:
            assert totals[name] is None
        else:
            assert histogram.bucket_of(totals[name]) == histogram.bucket_of(value)
    step = timedelta(days=1) if granularity == "day" else timedelta(hours=1)
    assert len(report["series"]) == (shown_to - shown_from) / step
    assert sum(point["calls"] for point in report["series"]) == exact["calls"]
    assert sum(agent["calls"] for agent in report["by_agent"]) == exact["calls"]
    unit = "1 day" if granularity == "day" else "1 hour"
    exact_per_bucket = {
        row["bucket"]: row["developers"]
        for row in await db_pool.fetch(
            f"""SELECT date_bin('{unit}', created_at, TIMESTAMPTZ '2000-01-01Z') AS bucket,
                       count(DISTINCT user_id) AS developers
                FROM call_logs WHERE agent_id = ANY($1::uuid[]) AND created_at >= $2
                  AND created_at < $3 GROUP BY 1""",
            [a.agent_id for a in agents],
            shown_from,
            shown_to,
        )
    }
    for point in report["series"]:
        bucket = datetime.fromisoformat(point["start"])
        assert point["unique_developers"] == exact_per_bucket.get(bucket, 0)
    for agent in report["by_agent"]:
        assert sum(point["calls"] for point in agent["series"]) == agent["calls"]
        per_agent = await db_pool.fetchval(
            """SELECT count(DISTINCT user_id) FROM call_logs WHERE agent_id = $1
               AND created_at >= $2 AND created_at < $3""",
            agent["agent_id"],
            shown_from,
            shown_to,
        )
        assert agent["unique_developers"] == per_agent


async def test_analytics_filters_by_agent_and_refuses_bad_queries(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    creator_id, headers = await creator(module_client)
    mine, other = await agent_of(db_pool, creator_id), await agent_of(db_pool, creator_id)
    developer = await caller(db_pool)
    at = DAY0 + timedelta(hours=5)
    await ingest(db_pool, redis, [event(developer, mine, at=at), event(developer, other, at=at)])
    params = {"from": DAY0.isoformat(), "to": (DAY0 + timedelta(days=1)).isoformat()}
    report = (
        await module_client.get(
            "/api/v1/creators/me/analytics", params={**params, "agent_id": mine.agent_id},
            headers=headers,
        )
    ).json()  # fmt: skip
    assert [a["agent_id"] for a in report["by_agent"]] == [mine.agent_id]
    assert report["totals"]["calls"] == 1

    someone_else = await agent_of(db_pool, (await creator(module_client))[0])
    response = await module_client.get(
        "/api/v1/creators/me/analytics", params={"agent_id": someone_else.agent_id},
        headers=headers,
    )  # fmt: skip
    assert_error(response, 404, "40401")
    for bad in (
        {"granularity": "week"},
        {"agent_id": "nope"},
        {"from": "2026-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "granularity": "hour"},
        {"from": "2020-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
    ):
        response = await module_client.get(
            "/api/v1/creators/me/analytics", params=bad, headers=headers
        )
        assert_error(response, 400, "40002")
    developer_token = bearer((await register(module_client, "developer"))["access_token"])
    response = await module_client.get("/api/v1/creators/me/analytics", headers=developer_token)
    assert_error(response, 403, "40301")


@settings(max_examples=10, deadline=None)
@given(minutes=st.lists(st.integers(0, 6 * 60 - 1), min_size=1, max_size=30),
       window=st.tuples(st.integers(0, 6 * 60 - 1), st.integers(1, 6 * 60)))  # fmt: skip
async def test_developer_usage_is_exact_for_any_range_and_per_key(
    module_client: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    minutes: list[int],
    window: tuple[int, int],
) -> None:
    """Whole hours come from the rollup, the edges from call_logs: any [from, to) counts
    exactly the calls in it, per agent, per key and per day."""
    session = await register(module_client, "developer")
    headers = bearer(session["access_token"])
    user_id = session["user"]["id"]
    shard = await shard_of(db_pool, user_id)
    developer = Developer(user_id, shard)
    keys = [Caller(developer, await make_key(db_pool, developer)) for _ in range(2)]
    agent = await agent_of(db_pool, (await creator(module_client))[0], "0.25")
    events = [
        event(keys[index % 2], agent, at=DAY0 + timedelta(minutes=minute, seconds=17))
        for index, minute in enumerate(minutes)
    ]
    await ingest(db_pool, redis, events)
    start = DAY0 + timedelta(minutes=window[0], seconds=3)
    end = start + timedelta(minutes=window[1])
    params = {"from": start.isoformat(), "to": end.isoformat()}
    report = (
        await module_client.get("/api/v1/developers/usage", params=params, headers=headers)
    ).json()

    inside = [e for e in events if start <= e.created_at < end]
    assert report["totals"]["calls"] == len(inside)
    assert Decimal(report["totals"]["cost_usd"]) == Decimal("0.25") * len(inside)
    by_key = {row["key_id"]: row["calls"] for row in report["by_key"]}
    for index, key in enumerate(keys):
        expected = sum(1 for i, e in enumerate(events) if i % 2 == index and e in inside)
        assert by_key.get(key.key.key_id, 0) == expected
    assert sum(day["calls"] for day in report["by_day"]) == len(inside)
    if inside:
        [row] = report["by_agent"]
        assert row["calls"] == len(inside)
        assert all(row["key_prefix"].startswith("ak_") for row in report["by_key"])


@pytest.mark.parametrize("granularity", ["day", "hour"])
async def test_an_empty_range_is_all_zeros(
    module_client: httpx.AsyncClient, granularity: str
) -> None:
    _, headers = await creator(module_client)
    params = {"granularity": granularity}
    report = (
        await module_client.get("/api/v1/creators/me/analytics", params=params, headers=headers)
    ).json()
    assert report["totals"]["calls"] == 0
    assert report["totals"]["latency_p50_ms"] is None
    assert report["series"]
    assert all(point["calls"] == 0 for point in report["series"])
