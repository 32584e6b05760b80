"""How the tests build each process under test: one builder each for the gateway, the
control plane's API and the worker (their environment, settings and, for the HTTP apps, the
app served over real HTTP), and the one test key ring every process shares.

A test that needs a process with other settings passes overrides, e.g.
`serve_gateway(gateway_env(servers, database_url, provider_url, UPSTREAM_TIMEOUT_S="1"))`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from control_plane.settings import ApiSettings, WorkerSettings
from control_plane.state import ControlPlaneState
from crypto.envelope import KeyRing
from crypto.passwords import PasswordHashing
from devstack.servers import PostgresServer, ValkeyServer
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


def _storage_env(database_url: str, redis_url: str) -> Env:
    # Flags re-read often: a test that flips one waits a fraction of a second, not two.
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
            "FEATURE_FLAGS_REFRESH_S": "0.1"}  # fmt: skip


def _keyring_env() -> Env:
    return {
        "AGENTLINK_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,
        "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": TEST_ACTIVE_KEY_ID,
    }


# -- gateway ---------------------------------------------------------------------------------


def gateway_env(
    database_url: str, redis_url: str, provider_url: str | None = None, **overrides: str
) -> Env:
    """A gateway on the session's storage with the OpenAI-format mock as its provider (short
    timeouts, so fault tests are quick)."""
    env = {
        **_storage_env(database_url, redis_url),
        **_keyring_env(),
        "REDIS_SOCKET_TIMEOUT_S": "1",
        "UPSTREAM_TIMEOUT_S": "3",
        "STREAM_FIRST_BYTE_TIMEOUT_S": "3",
        "STREAM_IDLE_TIMEOUT_S": "3",
    }
    if provider_url is not None:
        env |= {"OPENAI_BASE_URL": f"{provider_url}/v1", "OPENAI_API_KEY": "mock-key"}
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
        **_keyring_env(),
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
