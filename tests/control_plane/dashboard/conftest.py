"""Dashboard fixtures: the whole stack over real HTTP (mock provider, gateway, control plane
serving the pages with the gateway's address), and a cookie-keeping client that reads CSRF
tokens off the pages like a browser's form would."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from common.knowledge.local_embedder import LocalEmbedder
from control_plane.knowledge.ingest import KnowledgeIngester, KnowledgeMetrics
from control_plane.knowledge.settings import KnowledgeBaseSettings
from devstack.servers import free_port
from tests.control_plane.api_client import fresh_email
from tests.control_plane.payments.support import STRIPE_KEY, STRIPE_SECRETS
from tests.processes import (
    Servers,
    api_env,
    gateway_env,
    serve_api,
    serve_fake_stripe,
    serve_gateway,
)

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@dataclass(frozen=True)
class Stack:
    control_url: str
    gateway_url: str
    mock_url: str
    stripe_url: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def dashboard_stack(servers: Servers, database_url: str, mock_provider_url: str) -> Iterator[Stack]:
    """Mock provider, gateway, the fake Stripe, and a control plane using them all."""
    gateway = gateway_env(
        database_url, servers.redis_url, mock_provider_url, RATE_LIMIT_FREE_PER_MIN="1000"
    )
    with (
        serve_fake_stripe(STRIPE_SECRETS, api_key=STRIPE_KEY) as stripe,
        serve_gateway(gateway) as gateway_url,
    ):
        control_port = free_port()
        control = f"http://127.0.0.1:{control_port}"
        env = api_env(
            database_url,
            servers.redis_url,
            JWT_SECRET="dashboard-test-jwt-secret-at-least-32-chars",
            DASHBOARD_GATEWAY_URL=gateway_url,
            DASHBOARD_GATEWAY_PUBLIC_URL="https://gateway.agentlink.test",
            DASHBOARD_SECURE_COOKIES="auto",
            REVIEW_MIN_CALLS="1",
            RATE_LIMIT_FREE_PER_MIN="1000",
            STRIPE_SECRET_KEY=STRIPE_KEY,
            STRIPE_WEBHOOK_SECRET=",".join(STRIPE_SECRETS),
            STRIPE_API_BASE=stripe.url,
            PAYMENT_SUCCESS_URL=control + "/billing/success?id={CHECKOUT_SESSION_ID}",
            PAYMENT_CANCEL_URL=f"{control}/billing/cancel",
            PAYOUT_PROVIDERS="ledger,stripe",
        )
        with serve_api(env, port=control_port) as control_url:
            # The fake sends its webhooks to this control plane (and payers back to it).
            stripe.fake.config.webhook_url = f"{control_url}/api/v1/payments/webhook/stripe"
            yield Stack(control_url, gateway_url, mock_provider_url, stripe.url, env)


class Browserless:
    """An HTTP client that behaves like a browser submitting the dashboard's forms."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client
        self.csrf = ""

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        response = await self.http.get(path, **kwargs)  # type: ignore[arg-type]
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def post(
        self, path: str, data: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Response:
        if not self.csrf:
            await self.get("/login")
        form = {"csrf_token": self.csrf, **(data or {})}
        headers = {"Origin": str(self.http.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
        response = await self.http.post(path, data=form, headers=headers, **kwargs)  # type: ignore[arg-type]
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def post_files(
        self, path: str, files: list[tuple[str, bytes]], data: dict[str, str] | None = None
    ) -> httpx.Response:
        """A multipart form post (an upload form), each file in a field named `file`."""
        form = {"csrf_token": self.csrf, **(data or {})}
        headers = {"Origin": str(self.http.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
        response = await self.http.post(
            path, data=form, files=[("file", file) for file in files], headers=headers
        )
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def register(self, user_type: str, email: str | None = None) -> str:
        email = email or fresh_email()
        await self.get("/register")
        response = await self.post(
            "/register", {"email": email, "password": PASSWORD, "user_type": user_type}
        )
        assert response.status_code == 303, response.text
        await self.get(response.headers["location"])  # a fresh CSRF token for the new session
        return email

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/login")
        response = await self.post("/login", {"email": email, "password": password})
        if response.status_code == 303:
            await self.get(response.headers["location"])
        return response


@pytest_asyncio.fixture
async def browserless(dashboard_stack: Stack) -> AsyncIterator[Browserless]:
    async with httpx.AsyncClient(base_url=dashboard_stack.control_url, timeout=30) as client:
        yield Browserless(client)


@pytest_asyncio.fixture
async def another(dashboard_stack: Stack) -> AsyncIterator[Browserless]:
    """A second, independent browser."""
    async with httpx.AsyncClient(base_url=dashboard_stack.control_url, timeout=30) as client:
        yield Browserless(client)


class Worker:
    """The worker's knowledge ingestion, in process (the real local embedding model), run when
    a test says so: a page shows `processing` until then."""

    def __init__(self, ingester: KnowledgeIngester) -> None:
        self._ingester = ingester

    async def process_uploads(self) -> None:
        for _ in range(500):  # files other tests left queued are processed too
            if not await self._ingester.process_next():
                return
        raise AssertionError("the knowledge queue did not drain")


@pytest_asyncio.fixture(scope="session")
async def knowledge_worker(
    dashboard_stack: Stack, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> AsyncIterator[Worker]:
    embedder = LocalEmbedder()
    settings = KnowledgeBaseSettings.from_env(dashboard_stack.env)
    yield Worker(
        KnowledgeIngester(db_pool, redis, embedder, settings, KnowledgeMetrics(CollectorRegistry()))
    )
    await embedder.aclose()
