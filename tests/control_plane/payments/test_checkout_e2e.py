"""Buying quota end to end, over real HTTP, as a developer meets it: register → checkout →
the fake provider's hosted page → "Pay" → its signed webhook → quota and tier credited → a
gateway call past the old limits succeeds → refund → the units are taken back. Once through
Stripe (refund asked of Stripe by an admin, applied from Stripe's charge.refunded), once
through Coinbase Commerce (refund recorded by an admin)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import pytest_asyncio

from common.domain import AdminRole
from common.redis_store import create_redis
from control_plane.usage_ingest import ingest_once
from fake_payments import FakeCoinbase, FakeStripe
from tests.control_plane.agents.helpers import config, publish_agent
from tests.control_plane.api_client import admin_token, bearer, register
from tests.control_plane.payments.support import (
    COINBASE_KEY,
    COINBASE_SECRETS,
    STRIPE_KEY,
    STRIPE_SECRETS,
)
from tests.gateway.helpers import agent_sdk
from tests.processes import (
    Servers,
    gateway_env,
    serve_api,
    serve_fake_coinbase,
    serve_fake_stripe,
    serve_gateway,
)

FREE_RATE = 3  # calls per minute on the free tier, for this stack


@dataclass(frozen=True)
class Stack:
    control: str
    gateway: str
    stripe: FakeStripe
    coinbase: FakeCoinbase


@pytest.fixture(scope="module")
def stack(
    servers: Servers, control_env: dict[str, str], database_url: str, mock_provider_url: str
) -> Iterator[Stack]:
    with (
        serve_fake_stripe(STRIPE_SECRETS[:1]) as stripe,
        serve_fake_coinbase(COINBASE_SECRETS[:1]) as coinbase,
    ):
        env = {
            **control_env,
            "FREE_QUOTA_UNITS": "1",
            "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": STRIPE_SECRETS[0],
            "STRIPE_API_BASE": stripe.url,
            "COINBASE_API_KEY": COINBASE_KEY, "COINBASE_WEBHOOK_SECRET": COINBASE_SECRETS[0],
            "COINBASE_API_BASE": coinbase.url,
            "PAYMENT_SUCCESS_URL": "https://app.agentlink.test/paid",
        }  # fmt: skip
        with serve_api(env) as control_url:
            stripe.fake.config.webhook_url = f"{control_url}/api/v1/payments/webhook/stripe"
            coinbase.fake.config.webhook_url = f"{control_url}/api/v1/payments/webhook/coinbase"
            gateway = gateway_env(
                database_url, servers.redis_url, mock_provider_url,
                FREE_TRIAL_CALLS="0", RATE_LIMIT_FREE_PER_MIN=str(FREE_RATE),
            )  # fmt: skip
            with serve_gateway(gateway) as gateway_url:
                yield Stack(control_url, gateway_url, stripe.fake, coinbase.fake)


@dataclass
class Buyer:
    auth: dict[str, str]
    user_id: str
    agent_id: str
    api_key: str


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as client:
        yield client


async def make_buyer(api: httpx.AsyncClient) -> Buyer:
    creator = bearer((await register(api, "creator"))["access_token"])
    agent_id = await publish_agent(
        api, creator, name="Paid Haiku", config=config(system_prompt="Answer in haiku.", model="m")
    )
    developer = await register(api, "developer")
    auth = bearer(developer["access_token"])
    key = await api.post("/api/v1/developers/keys", headers=auth, json={"name": "buyer"})
    me = (await api.get("/api/v1/developers/me", headers=auth)).json()
    return Buyer(auth, me["id"], agent_id, key.json()["key"])


async def call(stack: Stack, buyer: Buyer) -> int:
    async with agent_sdk(stack.gateway, buyer.agent_id, buyer.api_key) as client:
        try:
            await client.chat.completions.create(
                model="agent", messages=[{"role": "user", "content": "the sea"}]
            )
        except openai.APIStatusError as error:
            return error.status_code
    return 200


async def pay_on_the_hosted_page(checkout_url: str) -> httpx.Response:
    """What a person does: open the page, press "Pay" (the form posts back to the page)."""
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(checkout_url)
        assert page.status_code == 200
        assert 'id="pay"' in page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        return await browser.post(httpx.URL(checkout_url).join(action.group(1)))


async def assert_flow_until_paid(
    stack: Stack, api: httpx.AsyncClient, buyer: Buyer, provider: str
) -> dict[str, Any]:
    # The free unit is used, and then the quota is exhausted.
    assert await call(stack, buyer) == 200
    assert await call(stack, buyer) == 429
    checkout = await api.post("/api/v1/payments/checkout", headers=buyer.auth,
                              json={"package": "starter", "provider": provider})  # fmt: skip
    assert checkout.status_code == 201, checkout.text
    payment = checkout.json()
    paid = await pay_on_the_hosted_page(payment["checkout_url"])
    assert paid.status_code == 303
    assert paid.headers["location"].startswith("https://app.agentlink.test/paid")
    me = (await api.get("/api/v1/developers/me", headers=buyer.auth)).json()
    assert me["rate_tier"] == "paid"
    assert me["quota"]["remaining"] == 1000
    detail = (await api.get(f"/api/v1/payments/{payment['id']}", headers=buyer.auth)).json()
    assert detail["status"] == "completed"
    # Past both old limits: the free quota (1) and the free tier's rate (3/min).
    for _ in range(FREE_RATE + 2):
        assert await call(stack, buyer) == 200
    me = (await api.get("/api/v1/developers/me", headers=buyer.auth)).json()
    assert me["quota"]["remaining"] == 1000 - (FREE_RATE + 2)
    return payment


async def ingest(servers: Servers, db: asyncpg.Pool) -> None:
    redis = create_redis(servers.redis_url)
    try:
        await ingest_once(redis, db)
    finally:
        await redis.aclose()


async def test_buying_quota_with_stripe_end_to_end(
    stack: Stack, api: httpx.AsyncClient, db_pool: asyncpg.Pool, servers: Servers
) -> None:
    buyer = await make_buyer(api)
    payment = await assert_flow_until_paid(stack, api, buyer, "stripe")
    delivered = {d["type"] for d in stack.stripe.recorder.deliveries if d["status"] == 200}
    assert {"checkout.session.completed", "payment_intent.succeeded"} <= delivered
    # An admin refunds it: Stripe is asked (with our payment intent), and its signed
    # charge.refunded takes back what is left: 995 of 1,000; the 5 used are recorded lost.
    _, token = await admin_token(db_pool, AdminRole.SUPER_ADMIN)
    refund = await api.post(f"/api/v1/admin/payments/{payment['id']}/refund",
                            headers=bearer(token), json={"reason": "customer asked"})  # fmt: skip
    assert refund.status_code == 200, refund.text
    assert refund.json()["refund"] == "requested"
    [asked] = [r for r in stack.stripe.recorder.requests if r["path"] == "/v1/refunds"]
    assert asked["body"]["amount"] == "1000"
    assert asked["body"]["payment_intent"].startswith("pi_test_")
    me = (await api.get("/api/v1/developers/me", headers=buyer.auth)).json()
    assert me["quota"]["remaining"] == 0
    assert me["rate_tier"] == "free"
    after = (await api.get(f"/api/v1/payments/{payment['id']}", headers=buyer.auth)).json()
    assert (after["status"], after["refunded_usd"], after["refunded_units"],
            after["lost_units"]) == ("refunded", "10.00", 1000, 5)  # fmt: skip
    assert await call(stack, buyer) == 429
    await ingest(servers, db_pool)  # Postgres agrees once the calls are ingested
    balance = await db_pool.fetchval(
        "SELECT total_quota + free_quota - used_quota FROM quotas WHERE user_id = $1",
        buyer.user_id,
    )
    assert balance == 0


async def test_buying_quota_with_coinbase_end_to_end(
    stack: Stack, api: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    _, token = await admin_token(db_pool, AdminRole.SUPER_ADMIN)
    admin = bearer(token)
    flag = "/api/v1/admin/feature-flags/enable_crypto_payments"
    assert (await api.put(flag, headers=admin, json={"enabled": True})).status_code == 200
    try:
        buyer = await make_buyer(api)
        payment = await assert_flow_until_paid(stack, api, buyer, "coinbase")
    finally:
        await api.put(flag, headers=admin, json={"enabled": False})
    delivered = [d["type"] for d in stack.coinbase.recorder.deliveries if d["status"] == 200]
    assert delivered[-2:] == ["charge:pending", "charge:confirmed"]
    # Coinbase has no refund API: the admin records the crypto sent back; units go now.
    refund = await api.post(
        f"/api/v1/admin/payments/{payment['id']}/refund",
        headers=admin,
        json={"reason": "sent back on chain", "amount_usd": "5.00"},
    )
    assert refund.status_code == 200, refund.text
    body = refund.json()
    assert body["refund"] == "recorded"
    assert (body["payment"]["payment"]["refunded_units"],
            body["payment"]["payment"]["status"]) == (500, "completed")  # fmt: skip
    me = (await api.get("/api/v1/developers/me", headers=buyer.auth)).json()
    assert me["quota"]["remaining"] == 1000 - (FREE_RATE + 2) - 500
    assert me["rate_tier"] == "paid"  # half of it still stands
    audit = (await api.get("/api/v1/admin/audit-log", headers=admin,
                           params={"target_id": payment["id"]})).json()  # fmt: skip
    assert [entry["action"] for entry in audit["items"]] == ["payment.refund"]
