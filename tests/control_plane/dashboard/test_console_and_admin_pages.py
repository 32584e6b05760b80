"""Developer console and admin pages over HTTP, on the real services."""

from __future__ import annotations

import re

import asyncpg
import httpx
import orjson
import redis.asyncio as redis_asyncio

from common.domain import AdminRole
from control_plane.usage_ingest import ingest_once
from tests.control_plane.dashboard.conftest import Browserless, Stack
from tests.control_plane.dashboard.support import create_agent, find, make_admin, user_id_of

FULL_KEY = re.compile(r"ak_[0-9A-Za-z]{38}")


async def test_a_new_key_is_shown_once_and_works_at_the_gateway(
    browserless: Browserless, another: Browserless, dashboard_stack: Stack
) -> None:
    await another.register("creator")
    agent_id = await create_agent(another, name="Key check", prompt="k", publish=True)
    await browserless.register("developer")
    await browserless.get("/developer/keys")
    created = await browserless.post("/developer/keys", {"name": "ci server"})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    key = FULL_KEY.search(created.text)
    assert key is not None
    assert "shown only this once" in created.text
    listing = await browserless.get("/developer/keys")
    assert not FULL_KEY.search(listing.text)
    assert key.group(0)[:8] in listing.text  # the prefix, to recognise it
    async with httpx.AsyncClient(base_url=dashboard_stack.gateway_url) as gateway:
        answer = await gateway.post(
            f"/proxy/v1/agents/{agent_id}/chat", headers={"X-AgentLink-Key": key.group(0)},
            json={"messages": [{"role": "user", "content": "ping"}]},
        )  # fmt: skip
        assert answer.status_code == 200
        key_id = find(r'action="/developer/keys/([0-9a-f-]{36})/revoke"', listing.text)
        revoked = await browserless.post(f"/developer/keys/{key_id}/revoke")
        assert revoked.status_code == 303
        refused = await gateway.post(
            f"/proxy/v1/agents/{agent_id}/chat", headers={"X-AgentLink-Key": key.group(0)},
            json={"messages": [{"role": "user", "content": "ping"}]},
        )  # fmt: skip
        assert refused.status_code == 401


async def test_usage_shows_calls_per_day_agent_and_key(
    browserless: Browserless, another: Browserless, dashboard_stack: Stack,
    db_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    await another.register("creator")
    agent_id = await create_agent(another, name="Usage meter", prompt="u", publish=True)
    await browserless.register("developer")
    await browserless.get(f"/playground/{agent_id}")
    for text in ("one", "two"):
        response = await browserless.http.post(
            f"/playground/{agent_id}/chat",
            content=orjson.dumps({"messages": [{"role": "user", "content": text}]}),
            headers={"Content-Type": "application/json", "X-CSRF-Token": browserless.csrf},
        )
        assert response.status_code == 200
    redis = redis_asyncio.Redis.from_url(dashboard_stack.env["REDIS_URL"])
    try:
        await ingest_once(redis, db_pool)
    finally:
        await redis.aclose()
    usage = await browserless.get("/developer/usage?days=7")
    assert usage.status_code == 200
    assert '<svg class="chart" id="calls-per-day"' in usage.text
    assert "Usage meter" in usage.text
    assert "Playground (browser session)" in usage.text
    assert '<span class="badge">playground</span>' in usage.text
    overview = await browserless.get("/developer")
    assert "Usage meter" in overview.text  # trials used on it
    assert "2 of 3" in overview.text


async def test_admin_suspends_and_reactivates_a_user_with_an_audit_trail(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool
) -> None:
    email = await another.register("developer")
    admin = await make_admin(db_pool, AdminRole.SUPER_ADMIN)
    await browserless.login(admin)
    user_id = await user_id_of(db_pool, email)
    listing = await browserless.get("/admin/users", params={"q": email})
    assert email in listing.text
    suspended = await browserless.post(
        f"/admin/users/{user_id}/status",
        {"status": "suspended", "reason": "testing", "back": "/admin/users"},
    )
    assert suspended.status_code == 303
    assert (await another.get("/developer")).status_code == 303  # logged out at once
    audit = await browserless.get("/admin/audit", params={"target_id": user_id})
    assert "user.status" in audit.text
    assert "testing" in audit.text
    await browserless.post(f"/admin/users/{user_id}/status", {"status": "active"})
    assert (await another.login(email)).status_code == 303


async def test_admin_agents_flags_moderation_and_system_pages(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool
) -> None:
    await another.register("creator")
    agent_id = await create_agent(another, name="Moderated", prompt="m", publish=True)
    admin = await make_admin(db_pool, AdminRole.SUPER_ADMIN)
    await browserless.login(admin)
    forced = await browserless.post(
        f"/admin/agents/{agent_id}/status", {"status": "suspended", "reason": "abuse"}
    )
    assert forced.status_code == 303
    creator_view = await another.get(f"/creator/agents/{agent_id}")
    assert "An administrator suspended this agent" in creator_view.text
    flags = await browserless.get("/admin/flags")
    assert "enable_webhooks" in flags.text
    toggled = await browserless.post("/admin/flags/maintenance_mode", {"enabled": "true"})
    assert toggled.status_code == 303
    assert "maintenance_mode is on." in (await browserless.get("/admin/flags")).text
    await browserless.post("/admin/flags/maintenance_mode", {"enabled": "false"})
    system = await browserless.get("/admin/system")
    assert system.status_code == 200
    assert "PostgreSQL" in system.text
    assert "Usage backlog" in system.text
    stats = await browserless.get("/admin")
    assert "Reviews to moderate" in stats.text
    assert (await browserless.get("/admin/moderation")).status_code == 200
    assert (await browserless.get("/admin/settlements")).status_code == 200


async def test_buying_a_package_goes_through_the_providers_checkout(
    browserless: Browserless, another: Browserless, dashboard_stack: Stack
) -> None:
    await browserless.register("developer")
    billing = await browserless.get("/developer/billing")
    assert "Buy Starter" in billing.text
    assert "No payments yet." in billing.text
    started = await browserless.post(
        "/developer/billing/checkout", {"package": "starter", "provider": "stripe"}
    )
    assert started.status_code == 303
    handoff = await browserless.get(started.headers["location"])
    checkout_url = find(r'<a class="button" href="([^"]+)">Continue to Stripe', handoff.text)
    assert checkout_url.startswith(dashboard_stack.stripe_url)
    assert f'content="0;url={checkout_url}"' in handoff.text
    # Nobody else can open this payment.
    await another.register("developer")
    assert (await another.get(started.headers["location"])).status_code == 404
    async with httpx.AsyncClient() as payer:  # the provider's page, outside our site
        paid = await payer.post(checkout_url.replace("&amp;", "&"))
        assert paid.status_code == 303
        assert paid.headers["location"].startswith(f"{dashboard_stack.control_url}/billing/success")
    back = await browserless.get("/billing/success")
    assert back.headers["location"] == "/developer/billing"
    billing = await browserless.get("/developer/billing")
    assert "Thank you" in billing.text
    assert find(r'id="quota-remaining">([0-9,]+)<', billing.text) == "1,100"
    assert "completed" in billing.text
    unknown = await browserless.post(
        "/developer/billing/checkout", {"package": "nope", "provider": "stripe"}
    )
    assert unknown.status_code == 400
    assert "Unknown package" in unknown.text
