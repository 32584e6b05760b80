"""Payouts by Stripe Connect, with the official `stripe` library against the fake Stripe: the
end-to-end path from calls through a real gateway to money on a creator's connected account,
a declined transfer returning the amount (property 32), and a timed-out transfer resolved by
asking Stripe, never paying twice."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from common.redis_store import create_redis
from control_plane.earnings.payouts.ledger import LedgerPayouts
from control_plane.earnings.payouts.stripe_connect import StripeConnectPayouts
from control_plane.earnings.settlements import settle_due
from control_plane.earnings.withdrawals import process_payouts
from control_plane.settings import ApiSettings
from control_plane.usage_ingest import ingest_once
from fake_payments.stripe.app import FakeStripe
from tests.control_plane.agents.helpers import config as agent_config
from tests.control_plane.agents.helpers import publish_agent
from tests.control_plane.api_client import bearer, register
from tests.control_plane.earnings.helpers import (
    balances,
    earnings_settings,
    fund,
    make_withdrawal_due,
)
from tests.gateway.helpers import agent_sdk
from tests.processes import (
    Servers,
    gateway_env,
    serve_api,
    serve_fake_stripe,
    serve_gateway,
    serve_mock_provider,
)

STRIPE_KEY = "sk_test_earnings_payouts"


@dataclasses.dataclass(frozen=True)
class Stack:
    stripe: FakeStripe
    stripe_url: str
    control_url: str
    gateway_url: str
    settings: ApiSettings


@pytest.fixture(scope="module")
def stack(servers: Servers, database_url: str, control_env: dict[str, str]) -> Iterator[Stack]:
    with (
        serve_fake_stripe(("whsec_x",), api_key=STRIPE_KEY) as stripe,
        serve_mock_provider() as mock_url,
    ):
        env = {
            **control_env,
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": "whsec_x",
            "STRIPE_API_BASE": stripe.url,
            "PAYOUT_PROVIDERS": "stripe,ledger",
            "SETTLEMENT_GRACE_S": "0",
        }
        with (
            serve_api(env) as control_url,
            serve_gateway(gateway_env(database_url, servers.redis_url, mock_url)) as gateway_url,
        ):
            yield Stack(
                stripe.fake, stripe.url, control_url, gateway_url, ApiSettings.from_env(env)
            )


@pytest_asyncio.fixture
async def payouts(stack: Stack) -> AsyncIterator[StripeConnectPayouts]:
    stripe_settings = stack.settings.payments.stripe
    assert stripe_settings is not None
    provider = StripeConnectPayouts(stripe_settings, timeout_s=1.0)
    yield provider
    await provider.aclose()


async def connected_creator(
    api: httpx.AsyncClient, stack: Stack, *, onboard: bool = True
) -> tuple[str, dict[str, str], str]:
    creator = await register(api, "creator")
    headers = bearer(creator["access_token"])
    linked = await api.post("/api/v1/creators/me/payout-account", headers=headers)
    assert linked.status_code == 200, linked.text
    account_id = linked.json()["account_id"]
    if onboard:  # the creator completes Stripe's onboarding page
        async with httpx.AsyncClient() as browser:
            done = await browser.post(linked.json()["onboarding_url"])
            assert done.status_code == 200
        status = (await api.get("/api/v1/creators/me/payout-account", headers=headers)).json()
        assert status["payouts_enabled"] is True
    return creator["user"]["id"], headers, account_id


def transfers_to(stack: Stack, account_id: str) -> list[dict[str, object]]:
    return [t for t in stack.stripe.store.all("transfer") if t["destination"] == account_id]


async def test_calls_to_settlement_to_a_stripe_transfer_right_to_the_cent(
    stack: Stack, servers: Servers, db_pool: asyncpg.Pool, payouts: StripeConnectPayouts
) -> None:
    async with httpx.AsyncClient(base_url=stack.control_url, timeout=30) as api:
        creator_id, creator_headers, account_id = await connected_creator(api, stack)
        agent_id = await publish_agent(
            api,
            creator_headers,
            name="Pricey",
            price_per_call="3.37",
            config=agent_config(system_prompt="Answer briefly."),
        )
        developer = await register(api, "developer")
        key = (await api.post("/api/v1/developers/keys", headers=bearer(developer["access_token"]),
                              json={"name": "e2e"})).json()["key"]  # fmt: skip
        await db_pool.execute(
            "UPDATE quotas SET total_quota = 10000 WHERE user_id = $1", developer["user"]["id"]
        )
        await db_pool.execute(  # the free tier allows 10 calls a minute
            "UPDATE users SET rate_tier = 'paid' WHERE id = $1", developer["user"]["id"]
        )
    async with agent_sdk(stack.gateway_url, agent_id, key) as client:
        for index in range(13):  # 3 free trials, then 10 paid calls of $3.37
            await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": f"question {index}"}]
            )
    redis: redis_asyncio.Redis = create_redis(servers.redis_url)
    try:
        await ingest_once(redis, db_pool)
    finally:
        await redis.aclose()
    assert (await balances(db_pool, creator_id))["pending_earnings"] == Decimal("33.70")

    config = stack.settings.earnings
    run = await settle_due(
        db_pool, config, now=_later(config.settlement_period_hours), creator_id=creator_id
    )
    [settlement] = run.settlements
    assert (settlement.gross, settlement.fee, settlement.net) == (
        Decimal("33.70"), Decimal("6.74"), Decimal("26.96"),
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.control_url, timeout=30) as api:
        made = await api.post("/api/v1/creators/me/withdrawals", headers=creator_headers,
                              json={"amount": "25.55", "method": "stripe"})  # fmt: skip
        assert made.status_code == 201, made.text
        withdrawal = made.json()
        assert (withdrawal["fee"], withdrawal["net_amount"]) == ("5.11", "20.44")
        await process_payouts(db_pool, {"stripe": payouts, "ledger": LedgerPayouts()}, config)
        done = (await api.get("/api/v1/creators/me/withdrawals", headers=creator_headers)).json()
        earnings = (await api.get("/api/v1/creators/me/earnings", headers=creator_headers)).json()
    [paid] = done["withdrawals"]
    assert paid["status"] == "completed"
    [transfer] = transfers_to(stack, account_id)
    assert (transfer["amount"], transfer["currency"]) == (2044, "usd")
    assert paid["reference"] == transfer["id"]
    assert earnings["available_balance"] == "1.41"  # 26.96 - 25.55
    assert earnings["withdrawn"] == "25.55"
    assert earnings["total_earnings"] == "26.96"
    assert earnings["pending_earnings"] == "0"


def _later(hours: int) -> object:
    from datetime import UTC, datetime

    return datetime.now(UTC) + timedelta(hours=hours)


async def test_a_declined_transfer_fails_and_returns_the_amount(
    stack: Stack, db_pool: asyncpg.Pool, payouts: StripeConnectPayouts
) -> None:
    """Property 32 against Stripe: an account that cannot receive transfers."""
    async with httpx.AsyncClient(base_url=stack.control_url, timeout=30) as api:
        creator_id, headers, account_id = await connected_creator(api, stack, onboard=False)
        await fund(db_pool, creator_id, Decimal(40))
        made = await api.post("/api/v1/creators/me/withdrawals", headers=headers,
                              json={"amount": "30", "method": "stripe"})  # fmt: skip
        assert made.status_code == 201, made.text
        await process_payouts(
            db_pool, {"stripe": payouts, "ledger": LedgerPayouts()}, earnings_settings()
        )
        [failed] = (await api.get("/api/v1/creators/me/withdrawals", headers=headers)).json()[
            "withdrawals"
        ]
    assert failed["status"] == "failed"
    assert "capabilities" in failed["failure_reason"]
    assert transfers_to(stack, account_id) == []
    assert (await balances(db_pool, creator_id))["available_balance"] == Decimal(40)


async def test_a_timed_out_transfer_is_found_not_paid_again(
    stack: Stack, db_pool: asyncpg.Pool, payouts: StripeConnectPayouts
) -> None:
    async with httpx.AsyncClient(base_url=stack.control_url, timeout=30) as api:
        creator_id, headers, account_id = await connected_creator(api, stack)
        await fund(db_pool, creator_id, Decimal(100))
        made = await api.post("/api/v1/creators/me/withdrawals", headers=headers,
                              json={"amount": "50", "method": "stripe"})  # fmt: skip
        withdrawal_id = made.json()["id"]
        async with httpx.AsyncClient() as control:  # Stripe takes the transfer, answers late
            await control.post(f"{stack.stripe_url}/_fake/connect/hang",
                               json={"count": 1, "seconds": 3})  # fmt: skip
        config = earnings_settings()
        first = await process_payouts(
            db_pool, {"stripe": payouts, "ledger": LedgerPayouts()}, config
        )
        assert first.unknown == 1
        assert len(transfers_to(stack, account_id)) == 1  # it did go through
        await make_withdrawal_due(db_pool, withdrawal_id)
        second = await process_payouts(
            db_pool, {"stripe": payouts, "ledger": LedgerPayouts()}, config
        )
        assert second.completed == 1
        [done] = (await api.get("/api/v1/creators/me/withdrawals", headers=headers)).json()[
            "withdrawals"
        ]
    [transfer] = transfers_to(stack, account_id)  # still exactly one
    assert (done["status"], done["reference"]) == ("completed", transfer["id"])
    assert transfer["amount"] == 4000
    assert (await balances(db_pool, creator_id))["available_balance"] == Decimal(50)
