"""Payment fixtures: the fake Stripe and Coinbase servers over real HTTP, a control plane
configured to use them (and they to send it their webhooks), and the payment services on the
session's Postgres and Redis for the tests that drive the ledger directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from control_plane.payments.services import PaymentServices
from control_plane.payments.settings import PaymentSettings
from fake_payments import FakeCoinbase, FakeStripe
from tests.control_plane.payments.support import (
    COINBASE_KEY,
    COINBASE_SECRETS,
    STRIPE_KEY,
    STRIPE_SECRETS,
)
from tests.processes import Served, serve_api, serve_fake_coinbase, serve_fake_stripe


@pytest.fixture(scope="session")
def fake_stripe() -> Iterator[Served[FakeStripe]]:
    with serve_fake_stripe(STRIPE_SECRETS, api_key=STRIPE_KEY) as served:
        yield served


@pytest.fixture(scope="session")
def fake_coinbase() -> Iterator[Served[FakeCoinbase]]:
    with serve_fake_coinbase(COINBASE_SECRETS[:1], api_key=COINBASE_KEY) as served:
        yield served


@pytest.fixture(scope="session")
def payments_env(
    control_env: dict[str, str], fake_stripe: Served[FakeStripe],
    fake_coinbase: Served[FakeCoinbase],
) -> dict[str, str]:  # fmt: skip
    return {
        **control_env,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": ",".join(STRIPE_SECRETS),
        "STRIPE_API_BASE": fake_stripe.url,
        "COINBASE_API_KEY": COINBASE_KEY,
        "COINBASE_WEBHOOK_SECRET": ",".join(COINBASE_SECRETS),
        "COINBASE_API_BASE": fake_coinbase.url,
        "PAYMENT_SUCCESS_URL": "https://app.agentlink.test/paid?session={CHECKOUT_SESSION_ID}",
        "PAYMENT_CANCEL_URL": "https://app.agentlink.test/cancelled",
    }


@pytest.fixture(scope="session")
def payments_url(
    payments_env: dict[str, str], fake_stripe: Served[FakeStripe],
    fake_coinbase: Served[FakeCoinbase],
) -> Iterator[str]:  # fmt: skip
    """A control plane using the fakes, which send their webhooks to it."""
    with serve_api(payments_env) as url:
        fake_stripe.fake.config.webhook_url = f"{url}/api/v1/payments/webhook/stripe"
        fake_coinbase.fake.config.webhook_url = f"{url}/api/v1/payments/webhook/coinbase"
        yield url


@pytest_asyncio.fixture(scope="session")
async def services(
    payments_env: dict[str, str], redis: redis_asyncio.Redis
) -> AsyncIterator[PaymentServices]:
    built = PaymentServices.build(PaymentSettings.from_env(payments_env), redis)
    yield built
    await built.aclose()


@pytest.fixture
def db(db_pool: asyncpg.Pool) -> asyncpg.Pool:
    return db_pool
