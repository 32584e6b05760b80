"""Creator analytics over HTTP: calls and revenue per day and per agent as SVG charts and
tables, from usage written by the worker's real ingestion; one agent at a time; another
creator's agent cannot be picked."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis_asyncio

from tests.control_plane.dashboard.conftest import Browserless
from tests.control_plane.dashboard.support import find, user_id_of
from tests.control_plane.earnings.helpers import agent_of, caller, event, ingest


async def test_charts_and_tables_per_day_and_per_agent(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:  # fmt: skip
    email = await browserless.register("creator")
    creator_id = await user_id_of(db_pool, email)
    empty = await browserless.get("/creator/analytics")
    assert empty.status_code == 200
    assert "No calls in this range." in empty.text
    assert find(r'id="total-calls">([^<]+)<', empty.text) == "0"

    premium = await agent_of(db_pool, creator_id, "2.50")
    cheap = await agent_of(db_pool, creator_id, "0.01")
    await db_pool.execute("UPDATE agents SET name = 'Premium Poet' WHERE id = $1",
                          premium.agent_id)  # fmt: skip
    await db_pool.execute("UPDATE agents SET name = 'Cheap Helper' WHERE id = $1",
                          cheap.agent_id)  # fmt: skip
    developer = await caller(db_pool)
    await ingest(db_pool, redis, [
        *(event(developer, premium) for _ in range(3)),
        *(event(developer, cheap) for _ in range(5)),
        event(developer, cheap, billable=False),
    ])  # fmt: skip

    page = await browserless.get("/creator/analytics?days=7")
    assert page.status_code == 200
    assert find(r'id="total-calls">([^<]+)<', page.text) == "9"
    assert find(r'id="total-revenue">([^<]+)<', page.text) == "$7.55"  # 3 x 2.50 + 5 x 0.01
    for chart in ("calls-per-day", "revenue-per-day", "calls-per-agent", "revenue-per-agent"):
        assert f'<svg class="chart" id="{chart}"' in page.text, chart
    assert "<title>Premium Poet: $7.50</title>" in page.text  # the bar's own label
    assert "<title>Cheap Helper: 6 calls</title>" in page.text
    per_agent = find(r'(<table id="per-agent">.*?</table>)', page.text.replace("\n", " "))
    assert per_agent.index("Cheap Helper") < per_agent.index("Premium Poet")  # most calls first
    assert "$0.05" in per_agent

    one = await browserless.get(f"/creator/analytics?days=30&agent={premium.agent_id}")
    assert one.status_code == 200
    assert "<h1>Analytics: Premium Poet</h1>" in one.text
    assert find(r'id="total-calls">([^<]+)<', one.text) == "3"
    assert 'id="calls-per-agent"' not in one.text

    await another.register("creator")
    refused = await another.get(f"/creator/analytics?agent={premium.agent_id}")
    assert refused.status_code == 404
    assert "Premium Poet" not in refused.text
