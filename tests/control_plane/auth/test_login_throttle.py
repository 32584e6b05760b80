"""Login throttling that a stranger can neither bypass nor turn against the owner (issue 9,
item 9). Over real HTTP; client addresses are set through X-Forwarded-For on a control plane
that trusts loopback as its proxy, and shown to be ignored on one that trusts no proxy. The
throttle's counters are in three cluster slots: the proxied control plane and the in-process
tests run on the single node and on the Valkey cluster (REDIS_CLUSTER)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from common import keyspace
from common.settings import SettingsError
from control_plane.auth.throttle import LoginThrottle, ThrottleSettings
from control_plane.settings import ApiSettings
from devstack.servers import ValkeyCluster
from tests.control_plane.api_client import assert_error, fresh_email
from tests.control_plane.conftest import Backend
from tests.processes import Servers, api_env, serve_api

PASSWORD = "the right one"
LIMITS = {"LOGIN_FAILURES_PER_ACCOUNT": "3", "LOGIN_ACCOUNT_CEILING": "6",
          "LOGIN_BACKOFF_MAX_S": "60"}  # fmt: skip


@pytest.fixture(scope="module", params=["single", "cluster"])
def proxied_url(
    request: pytest.FixtureRequest, servers: Servers, database_url: str
) -> Iterator[str]:
    """A control plane behind a proxy on loopback: X-Forwarded-For names the client."""
    if request.param == "single":
        storage = {"REDIS_URL": servers.redis_url}
    else:
        cluster: ValkeyCluster = request.getfixturevalue("valkey_cluster")
        storage = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true"}
    env = api_env(database_url, "", TRUSTED_PROXIES="127.0.0.1", **LIMITS) | storage
    with serve_api(env) as url:
        yield url


@pytest.fixture(scope="module")
def direct_url(servers: Servers, database_url: str) -> Iterator[str]:
    """The default: no trusted proxy, the TCP peer is the client."""
    with serve_api(api_env(database_url, servers.redis_url, **LIMITS)) as url:
        yield url


@pytest_asyncio.fixture
async def proxied(proxied_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxied_url) as client:
        yield client


async def account(client: httpx.AsyncClient) -> str:
    email = fresh_email()
    response = await client.post("/api/v1/auth/register", json={
        "email": email, "password": PASSWORD, "user_type": "developer"})  # fmt: skip
    assert response.status_code == 201, response.text
    return email


async def login(
    client: httpx.AsyncClient, email: str, password: str, ip: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )


def random_ip() -> str:
    raw = uuid.uuid4().bytes
    return f"203.{raw[0]}.{raw[1]}.{raw[2]}"


async def test_a_stranger_cannot_lock_the_owner_out(proxied: httpx.AsyncClient) -> None:
    email = await account(proxied)
    stranger, owner = random_ip(), random_ip()
    for _ in range(3):
        assert_error(await login(proxied, email, "guess", stranger), 401, "40101")
    blocked = await login(proxied, email, PASSWORD, stranger)
    assert_error(blocked, 429, "42902")
    assert int(blocked.headers["retry-after"]) > 0
    assert (await login(proxied, email, PASSWORD, owner)).status_code == 200


async def test_rotating_x_forwarded_for_does_not_bypass_the_throttle(
    direct_url: str,
) -> None:
    """With no trusted proxy the header is ignored: every attempt is the loopback peer's."""
    async with httpx.AsyncClient(base_url=direct_url) as direct:
        email = await account(direct)
        for _ in range(3):
            assert_error(await login(direct, email, "guess", random_ip()), 401, "40101")
        assert_error(await login(direct, email, PASSWORD, random_ip()), 429, "42902")


async def test_a_distributed_guesser_hits_the_ceiling_and_backs_off_but_the_owner_goes_on(
    proxied: httpx.AsyncClient,
) -> None:
    email = await account(proxied)
    home = random_ip()
    assert (await login(proxied, email, PASSWORD, home)).status_code == 200  # a known IP
    for _ in range(6):  # six IPs, one guess each: the ceiling
        assert_error(await login(proxied, email, "guess", random_ip()), 401, "40101")
    # A new IP must wait now, even with the right password...
    waiting = await login(proxied, email, PASSWORD, random_ip())
    assert_error(waiting, 429, "42902")
    assert 1 <= int(waiting.headers["retry-after"]) <= 60
    # ...while the owner's IP is not slowed at all.
    assert (await login(proxied, email, PASSWORD, home)).status_code == 200


async def test_the_backoff_doubles_up_to_its_cap(backend: Backend) -> None:
    redis = backend.redis
    settings = ThrottleSettings(account_limit=100, ip_limit=1000, window_s=900,
                                account_ceiling=3, backoff_max_s=16)  # fmt: skip
    throttle = LoginThrottle(redis, settings)
    email = fresh_email()
    waits = []
    for _ in range(9):
        await throttle.failed(email, random_ip())
        waits.append(await redis.ttl(keyspace.login_backoff_of_account(email)))
    # No wait below the ceiling (-2: no key), then 1, 2, 4, 8 s and the 16 s cap.
    assert waits == [-2, -2, 1, 2, 4, 8, 16, 16, 16]


async def test_success_clears_only_its_own_counter(backend: Backend) -> None:
    """The owner logging in does not reset a guesser's progress towards the ceiling."""
    redis = backend.redis
    throttle = LoginThrottle(redis, ThrottleSettings(account_ceiling=50))
    email, guesser, owner = fresh_email(), random_ip(), random_ip()
    for _ in range(2):
        await throttle.failed(email, guesser)
        await throttle.failed(email, owner)
    await throttle.succeeded(email, owner)
    assert await redis.get(keyspace.login_failures_of_account_from_ip(email, owner)) is None
    assert await redis.get(keyspace.login_failures_of_account_from_ip(email, guesser)) == b"2"
    assert await redis.get(keyspace.login_failures_of_account(email)) == b"4"
    # Every counter ends with its window: none is left to lock anyone out for good.
    for counter in (keyspace.login_failures_of_account_from_ip(email, guesser),
                    keyspace.login_failures_from_ip(guesser),
                    keyspace.login_failures_of_account(email)):  # fmt: skip
        assert 0 < await redis.ttl(counter) <= ThrottleSettings().window_s


@pytest.mark.parametrize("value", ["not-an-ip", "10.0.0.0/33", "127.0.0.1,,x"])
def test_trusted_proxies_must_be_addresses(value: str) -> None:
    env = api_env("postgresql://x/y", "redis://x", TRUSTED_PROXIES=value)
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        ApiSettings.from_env(env)


def test_no_trusted_proxy_by_default() -> None:
    assert ApiSettings.from_env(api_env("postgresql://x/y", "redis://x")).trusted_proxies == ()
