"""How the tests build each process under test: one builder each for the gateway, the
control plane's API and the worker (their environment, settings and, for the HTTP apps, the
app served over real HTTP), the outside services' fakes (mock LLM provider, fake Stripe,
fake Coinbase Commerce), and the one test key ring every process shares.

A test that needs a process with other settings passes overrides, e.g.
`serve_gateway(gateway_env(database_url, redis_url, provider_url, UPSTREAM_TIMEOUT_S="1"))`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster

from common.redis_store import close_redis, create_redis
from control_plane.settings import ApiSettings, WorkerSettings
from control_plane.state import ControlPlaneState
from crypto.envelope import KeyRing
from crypto.passwords import PasswordHashing
from devstack.servers import PostgresServer, ValkeyCluster, ValkeyServer, free_port
from fake_payments import FakeCoinbase, FakeStripe, create_coinbase_app, create_stripe_app
from fake_payments.config import FakeConfig
from gateway.settings import GatewaySettings
from gateway.tracing import Tracing
from tests.support import serve

# A fixed test key (never a real one): every process of a test session seals and opens agent
# configs with it, so what the API writes the gateway can read.
TEST_ENCRYPTION_KEYS = "t1:" + "A" * 43 + "="
TEST_ACTIVE_KEY_ID = "t1"
TEST_KEYRING = KeyRing.from_env(TEST_ENCRYPTION_KEYS, TEST_ACTIVE_KEY_ID)
TEST_JWT_SECRET = "test-jwt-secret-at-least-32-characters-long"


def cheap_passwords() -> PasswordHashing:
    """argon2id at its cheapest: tests register many accounts."""
    return PasswordHashing(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass(frozen=True)
class Servers:
    """The session's Postgres and Redis (None: external servers from DATABASE_URL/REDIS_URL)."""

    postgres_url: str
    redis_url: str
    postgres: PostgresServer | None
    valkey: ValkeyServer | None


Env = dict[str, str]


@dataclass(frozen=True)
class Deployment:
    """What gateways under test run on: the session's single Valkey, or the 3-primary cluster
    (REDIS_CLUSTER=true). `env` is a gateway's environment there, `redis` a client of the same
    Redis for the test's own reads (a RedisCluster's on the cluster)."""

    kind: str
    env: dict[str, str]
    redis: Any


def _storage_env(database_url: str, redis_url: str) -> Env:
    # Flags re-read often: a test that flips one waits a fraction of a second, not two.
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
            "FEATURE_FLAGS_REFRESH_S": "0.1"}  # fmt: skip


def keyring_env() -> Env:
    """The test key ring, as every process reads it (the load harnesses' gateways too)."""
    return {
        "AGENTLINK_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,
        "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": TEST_ACTIVE_KEY_ID,
    }


def mock_provider_env(provider_url: str) -> Env:
    """A gateway whose OpenAI provider is the mock at `provider_url`."""
    return {"OPENAI_BASE_URL": f"{provider_url}/v1", "OPENAI_API_KEY": "mock-key"}


# -- storage -------------------------------------------------------------------------------

CLUSTER_PRIMARIES = 3


@contextlib.contextmanager
def serve_valkey_cluster(*, durable: bool = False) -> Iterator[ValkeyCluster]:
    """A real 3-primary Valkey cluster (the same binary, `cluster-enabled yes`) in a scratch
    folder; `durable`: append-only, so a killed primary restarts with its data."""
    root = Path(tempfile.mkdtemp(prefix="agentlink-cluster-"))
    nodes = ValkeyCluster(root, [free_port() for _ in range(CLUSTER_PRIMARIES)], durable=durable)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def cluster_client_of(cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    """A cluster client that knows the nodes and their slots already (NOT flushed)."""
    client = create_redis(cluster.url, cluster=True, socket_timeout_s=5.0)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    try:
        yield client
    finally:
        await close_redis(client)


# -- gateway ---------------------------------------------------------------------------------


def gateway_env(
    database_url: str, redis_url: str, provider_url: str | None = None, **overrides: str
) -> Env:
    """A gateway on the session's storage with the OpenAI-format mock as its provider (short
    timeouts, so fault tests are quick)."""
    env = {
        **_storage_env(database_url, redis_url),
        **keyring_env(),
        "REDIS_SOCKET_TIMEOUT_S": "1",
        "UPSTREAM_TIMEOUT_S": "3",
        "STREAM_FIRST_BYTE_TIMEOUT_S": "3",
        "STREAM_IDLE_TIMEOUT_S": "3",
    }
    if provider_url is not None:
        env |= mock_provider_env(provider_url)
    return env | overrides


@contextlib.contextmanager
def serve_gateway(env: Env, *, tracing: Tracing | None = None) -> Iterator[str]:
    """A gateway over real HTTP on a loopback port; yields its base URL."""
    from gateway.app import create_app

    with serve(create_app(GatewaySettings.from_env(env), tracing=tracing)) as url:
        yield url


# -- control plane: HTTP API ----------------------------------------------------------------


def api_env(database_url: str, redis_url: str, **overrides: str) -> Env:
    return {
        **_storage_env(database_url, redis_url),
        **keyring_env(),
        "JWT_SECRET": TEST_JWT_SECRET,
        "CORS_ALLOW_ORIGINS": "https://app.agentlink.test",
        # The tests' webhook receivers listen on loopback.
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
    } | overrides


@contextlib.contextmanager
def serve_api(env: Env, *, port: int | None = None) -> Iterator[str]:
    """The control plane's API over real HTTP, with cheap password hashing."""
    from control_plane.app import create_app

    app = create_app(ApiSettings.from_env(env), passwords=cheap_passwords())
    with serve(app, port=port) as url:
        yield url


def api_state(env: Env, db: asyncpg.Pool, redis: redis_asyncio.Redis) -> ControlPlaneState:
    """What the API builds at start-up, on the test's own pool and Redis client, for calling
    services in-process."""
    hashing = cheap_passwords()
    return ControlPlaneState(
        settings=ApiSettings.from_env(env),
        db=db,
        redis=redis,
        registry=CollectorRegistry(),
        keyring=TEST_KEYRING,
        passwords=hashing,
        dummy_password_hash=hashing.hash("not-a-real-password"),
    )


# -- control plane: worker ------------------------------------------------------------------


def worker_env(database_url: str, redis_url: str, **overrides: str) -> Env:
    """A worker that serves no metrics port unless asked to."""
    return {**_storage_env(database_url, redis_url), "WORKER_METRICS_PORT": "0"} | overrides


def worker_settings(database_url: str, redis_url: str, **overrides: str) -> WorkerSettings:
    return WorkerSettings.from_env(worker_env(database_url, redis_url, **overrides))


# -- outside services' fakes ---------------------------------------------------------------


@contextlib.contextmanager
def serve_mock_provider() -> Iterator[str]:
    """The mock LLM provider (OpenAI, Anthropic and Gemini formats) over real HTTP."""
    from mock_provider import create_app

    with serve(create_app(), health_path="/health") as url:
        yield url


Fake = TypeVar("Fake", FakeStripe, FakeCoinbase)


@dataclass(frozen=True)
class Served(Generic[Fake]):
    """A fake payment provider and its base URL; `fake.config.webhook_url` may be set after
    start, once the app that receives its webhooks is up."""

    fake: Fake
    url: str


@contextlib.contextmanager
def _serve_fake(
    create: Callable[[FakeConfig], Fake], secrets: tuple[str, ...], api_key: str | None,
    webhook_url: str | None,
) -> Iterator[Served[Fake]]:  # fmt: skip
    port = free_port()  # the fake's hosted pages name its own address
    config = FakeConfig(f"http://127.0.0.1:{port}", webhook_url=webhook_url,
                        webhook_secrets=secrets, api_key=api_key)  # fmt: skip
    fake = create(config)
    with serve(fake, health_path="/health", port=port) as url:
        yield Served(fake, url)


def serve_fake_stripe(
    secrets: tuple[str, ...], *, api_key: str | None = None, webhook_url: str | None = None
) -> contextlib.AbstractContextManager[Served[FakeStripe]]:
    """The fake Stripe over real HTTP, signing its webhooks with `secrets`."""
    return _serve_fake(create_stripe_app, secrets, api_key, webhook_url)


def serve_fake_coinbase(
    secrets: tuple[str, ...], *, api_key: str | None = None, webhook_url: str | None = None
) -> contextlib.AbstractContextManager[Served[FakeCoinbase]]:
    """The fake Coinbase Commerce over real HTTP, signing its webhooks with `secrets`."""
    return _serve_fake(create_coinbase_app, secrets, api_key, webhook_url)
