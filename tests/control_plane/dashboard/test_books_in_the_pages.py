"""The books reconcile in the pages, through the real pipeline: a developer buys quota through
the fake Stripe checkout and calls a premium agent through the gateway (trials first), the
worker's ingestion writes the usage, and every page tells the same story to the cent: the
developer's quota and usage, the creator's analytics, overview and pending earnings."""

from __future__ import annotations

import asyncpg
import httpx
import redis.asyncio as redis_asyncio

from control_plane.usage_ingest import ingest_once
from tests.control_plane.dashboard.conftest import Browserless, Stack
from tests.control_plane.dashboard.support import create_agent, find

PRICE = "3.00"  # 300 quota units a call at the default $0.01 unit price


async def test_quota_usage_analytics_and_earnings_agree(
    browserless: Browserless, another: Browserless, dashboard_stack: Stack,
    db_pool: asyncpg.Pool, redis: redis_asyncio.Redis,
) -> None:  # fmt: skip
    await another.register("creator")
    agent_id = await create_agent(another, name="Premium Reckoner", prompt="r", price=PRICE,
                                  publish=True)  # fmt: skip
    await browserless.register("developer")
    started = await browserless.post(
        "/developer/billing/checkout", {"package": "starter", "provider": "stripe"}
    )
    handoff = await browserless.get(started.headers["location"])
    checkout_url = find(r'<a class="button" href="([^"]+)">Continue to Stripe', handoff.text)
    async with httpx.AsyncClient() as payer:
        assert (await payer.post(checkout_url.replace("&amp;", "&"))).status_code == 303
    billing = await browserless.get("/developer/billing")
    assert find(r'id="quota-remaining">([0-9,]+)<', billing.text) == "1,100"  # 100 free + 1,000

    created = await browserless.post("/developer/keys", {"name": "books"})
    key = find(r"(ak_[0-9A-Za-z]{38})", created.text)
    async with httpx.AsyncClient(base_url=dashboard_stack.gateway_url, timeout=30) as gateway:
        for turn in range(5):  # three free trials, then two calls charged to quota
            answer = await gateway.post(
                f"/proxy/v1/agents/{agent_id}/chat", headers={"X-AgentLink-Key": key},
                json={"messages": [{"role": "user", "content": f"count {turn}"}]},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
    await ingest_once(redis, db_pool)

    billing = await browserless.get("/developer/billing")
    assert find(r'id="quota-remaining">([0-9,]+)<', billing.text) == "500"  # 1,100 - 2 x 300
    usage = await browserless.get("/developer/usage?days=7")
    per_agent = find(r"(<td><a href=\"/marketplace/" + agent_id + r"\">.*?</tr>)", usage.text)
    assert '<td class="num">5</td>' in per_agent  # calls
    assert '<td class="num">600</td>' in per_agent  # units
    assert "$6.00" in per_agent

    analytics = await another.get(f"/creator/analytics?days=7&agent={agent_id}")
    assert find(r'id="total-calls">([^<]+)<', analytics.text) == "5"
    assert find(r'id="total-revenue">([^<]+)<', analytics.text) == "$6.00"
    overview = await another.get("/creator")
    assert find(r'id="revenue-30-days">([^<]+)<', overview.text) == "$6.00"
    earnings = await another.get("/creator/earnings")
    assert find(r'id="balance-pending">([^<]+)<', earnings.text) == "$6.00"
