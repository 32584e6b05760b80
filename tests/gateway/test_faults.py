"""Faults, end to end: a failing or slow provider, a client that leaves, Redis down or
restarted, a gateway killed mid-call. Billing must come out right in every case (DESIGN.md:
billable only when the provider answered 2xx and the answer completed, or the client left
after that), and every error must be the envelope with a request id (properties 4, 27, 33, 34).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import keyspace
from common.redis_store import LuaScripts
from control_plane.reaper import reap_expired
from devstack.servers import free_port
from tests.gateway.helpers import (
    NO_BREAKER,
    Caller,
    assert_error,
    chat,
    chat_url,
    gateway,
    gateway_process,
    in_band_error,
    make_caller,
    mock_requests_containing,
    quota_units,
    sse_events,
    usage_events,
    wait_for_events,
)
from tests.processes import Servers

SHORT = "0.5"  # seconds: the fault gateway's timeouts, scaled down from the seed's 30 s


@pytest.fixture(scope="module")
def faults_gateway(gateway_env: dict[str, str]) -> Iterator[str]:
    """Short timeouts, and a breaker that never opens: each test here injects failures and
    must see the provider's own answer, not a breaker tripped by an earlier test."""
    with gateway(
        gateway_env,
        UPSTREAM_TIMEOUT_S=SHORT,
        STREAM_FIRST_BYTE_TIMEOUT_S=SHORT,
        STREAM_IDLE_TIMEOUT_S=SHORT,
        **NO_BREAKER,
    ) as url:
        yield url


async def charged_caller(db_pool: asyncpg.Pool, quota: int = 5) -> Caller:
    """Trials already spent, so every call reserves quota: a refund is visible in the balance."""
    return await make_caller(db_pool, quota=quota, tier="paid", trials_used=3)


def assert_not_billed(event: dict[str, str], status: str, error_code: str) -> None:
    assert event["billable"] == "0", event
    assert event["units"] == "0", event
    assert event["charge"] == "quota", event
    assert event["status"] == status, event
    assert event["error_code"] == error_code, event


# -- Provider errors (properties 4 and 33) ---------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        (500, 503, "50301"),
        (502, 503, "50301"),
        (503, 503, "50301"),
        (429, 503, "50301"),
        (400, 400, "40001"),
        (422, 400, "40001"),
        (401, 500, "50001"),  # our provider credentials are wrong: our fault, not the client's
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_provider_error_is_an_envelope_and_costs_nothing(
    faults_gateway: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    case: tuple[int, int, str],
    stream: bool,
) -> None:
    """Property 33: Error Response Standardization, and Property 4: a failed call costs
    no quota."""
    upstream, status, code = case
    caller = await charged_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await chat(
            client, faults_gateway, caller, f"x [[mock status={upstream}]]", stream=stream
        )
    body = assert_error(response, status, code)
    assert "mock" not in body["error"]["message"]  # the provider's body is never quoted
    [event] = await wait_for_events(redis, caller, 1)
    assert_not_billed(event, "error", code)
    assert event["request_id"] == body["request_id"]
    assert await quota_units(redis, caller) == 5


# -- Timeouts (property 27, scaled down) -----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_provider_slower_than_the_timeout_is_504(
    faults_gateway: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, stream: bool
) -> None:
    caller = await charged_caller(db_pool)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await chat(
            client, faults_gateway, caller, "slow [[mock latency_ms=3000]]", stream=stream
        )
    assert_error(response, 504, "50401")
    [event] = await wait_for_events(redis, caller, 1)
    assert_not_billed(event, "timeout", "50401")
    assert await quota_units(redis, caller) == 5


@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [
        pytest.param("stall [[mock chunks=5 stall_after=2 stall_ms=5000]]", "timeout", "50401",
                     id="stalls"),
        pytest.param("break [[mock chunks=5 break_after=2]]", "error", "50301", id="breaks"),
    ],
)  # fmt: skip
async def test_a_stream_that_fails_midway_ends_with_an_in_band_error(
    *, faults_gateway: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, directive: str,
    status: str, code: str,
) -> None:  # fmt: skip
    caller = await charged_caller(db_pool)
    request_id = f"midway-{status}-{caller.developer.user_id}"
    async with httpx.AsyncClient(timeout=30) as client:
        response = await chat(client, faults_gateway, caller, directive, stream=True,
                              headers={"X-Request-ID": request_id})  # fmt: skip
    assert response.status_code == 200  # the status line went out before the failure
    error = assert_partial_stream_then_error(response, code)
    assert error["request_id"] == request_id
    [event] = await wait_for_events(redis, caller, 1)
    assert_not_billed(event, status, code)
    assert await quota_units(redis, caller) == 5


def assert_partial_stream_then_error(response: httpx.Response, code: str) -> dict[str, Any]:
    events = sse_events(response.text)
    assert b"[DONE]" not in events
    content = [event for event in events if b'"delta"' in event]
    assert len(content) >= 2, response.text  # the chunks sent before the failure got through
    error = in_band_error(response.text)
    assert error is not None, response.text
    assert events[-1].startswith(b'{"error"')  # the error is the last thing in the stream
    assert error["error"]["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# -- The circuit breaker (property 26, end to end) -------------------------------------------


async def test_an_open_breaker_refuses_without_calling_the_provider(
    start_gateway: Any,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    url = start_gateway(BREAKER_OPEN_S="60")
    caller = await charged_caller(db_pool, quota=50)
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):  # min_calls failures in one interval: ratio 1.0
            assert_error(await chat(client, url, caller, "[[mock status=500]]"), 503, "50301")
        for stream in (False, True):
            marker = f"must-not-reach-the-provider-{uuid.uuid4().hex}"
            response = await chat(client, url, caller, marker, stream=stream)
            assert_error(response, 503, "50301")
            assert await mock_requests_containing(client, mock_provider_url, marker) == 0
        metrics = (await client.get(f"{url}/metrics")).text
    assert 'agentlink_gateway_circuit_breaker_state{provider="openai"} 1.0' in metrics
    events = await wait_for_events(redis, caller, 7)
    assert [event["billable"] for event in events] == ["0"] * 7
    assert await quota_units(redis, caller) == 50


async def test_the_breaker_closes_again_after_a_successful_trial(
    start_gateway: Any, mock_provider_url: str, db_pool: asyncpg.Pool
) -> None:
    url = start_gateway(BREAKER_OPEN_S="2", BREAKER_HALF_OPEN_CALLS="1")
    caller = await charged_caller(db_pool, quota=100)
    refused = f"refused-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):
            await chat(client, url, caller, "[[mock status=500]]")
        assert_error(await chat(client, url, caller, refused), 503, "50301")
        deadline = time.monotonic() + 10
        while True:  # the open period ends after 2 s: poll, never a fixed sleep
            response = await chat(client, url, caller, "trial")
            if response.status_code == 200:
                break
            assert_error(response, 503, "50301")
            assert time.monotonic() < deadline, "the breaker never let a trial call through"
            await asyncio.sleep(0.1)
        assert (await chat(client, url, caller, "closed again")).status_code == 200
        assert await mock_requests_containing(client, mock_provider_url, refused) == 0


# -- A client that leaves ---------------------------------------------------------------------


async def test_a_client_leaving_midstream_is_billed_as_cancelled_and_the_gateway_stops(
    faults_gateway: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await charged_caller(db_pool)
    stream_s = 200 * 0.05  # what the whole answer would take
    async with httpx.AsyncClient(timeout=30) as client:
        request = client.build_request(
            "POST",
            chat_url(faults_gateway, caller.agent.agent_id),
            headers={"X-AgentLink-Key": caller.key.plaintext},
            json={
                "messages": [{"role": "user", "content": "[[mock chunks=200 chunk_delay_ms=50]]"}],
                "stream": True,
            },
        )
        response = await client.send(request, stream=True)
        assert response.status_code == 200
        received = 0
        async for _ in response.aiter_raw():
            received += 1
            if received == 2:
                break
        await response.aclose()  # the client goes away mid-stream
    left_at = time.monotonic()
    [event] = await wait_for_events(redis, caller, 1, timeout_s=stream_s / 2)
    # The gateway settled the call well before the provider would have finished: it stopped
    # relaying (and reading) when the client left.
    assert time.monotonic() - left_at < stream_s / 2
    assert int(event["latency_ms"]) < stream_s * 1000 * 0.8
    assert event["billable"] == "1"
    assert event["status"] == "cancelled"
    assert event["charge"] == "quota"
    assert event["units"] == "1"
    assert await quota_units(redis, caller) == 4


# -- Redis down, Redis restarted -------------------------------------------------------------


async def test_with_redis_down_calls_fail_fast_with_503(
    start_gateway: Any, db_pool: asyncpg.Pool
) -> None:
    url = start_gateway(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient(timeout=30) as client:
        started = time.monotonic()
        for stream in (False, True):
            response = await chat(client, url, caller, stream=stream)
            assert_error(response, 503, "50302")
        assert time.monotonic() - started < 10  # a generous bound: it must not hang
        ready = await client.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] == "unavailable"
        assert (await client.get(f"{url}/healthz")).status_code == 200


async def test_calls_work_again_right_after_a_redis_restart(
    servers: Servers, gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    if servers.valkey is None:
        pytest.skip("Redis is external (REDIS_URL): the suite cannot restart it")
    caller = await make_caller(db_pool, tier="paid")
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await chat(client, gateway_url, caller)).status_code == 200  # records warm
        await asyncio.to_thread(servers.valkey.restart)  # non-durable: every key is gone
        # Cold records reload from Postgres; the Lua scripts reload on NOSCRIPT.
        response = await chat(client, gateway_url, caller)
        assert response.status_code == 200, response.text
        assert (await chat(client, gateway_url, caller, stream=True)).status_code == 200
        assert (await client.get(f"{gateway_url}/readyz")).status_code == 200
    fresh = redis_asyncio.Redis.from_url(servers.redis_url)
    try:
        assert (
            await fresh.exists(
                keyspace.api_key_record(caller.shard, caller.key.key_hash),
                keyspace.user_record(caller.shard, caller.developer.user_id),
                keyspace.agent_record(caller.agent.agent_id),
            )
            == 3
        )
    finally:
        await fresh.aclose()


# -- A gateway killed mid-call ----------------------------------------------------------------


async def test_a_reservation_of_a_killed_gateway_is_given_back_by_the_reaper(
    gateway_env: dict[str, str],
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    tmp_path: Path,
) -> None:
    caller = await charged_caller(db_pool)
    env = {**gateway_env, "RESERVATION_TTL_S": "1"}  # due for reaping 1 s after admission
    with gateway_process(env, tmp_path / "gateway.log") as doomed:
        await doomed.wait_until_ready()
        async with httpx.AsyncClient(timeout=30) as client:
            request = client.build_request(
                "POST",
                chat_url(doomed.url, caller.agent.agent_id),
                headers={"X-AgentLink-Key": caller.key.plaintext, "X-Request-ID": "doomed-1"},
                json={
                    "messages": [
                        {"role": "user", "content": "[[mock chunks=200 chunk_delay_ms=50]]"}
                    ],
                    "stream": True,
                },
            )
            response = await client.send(request, stream=True)
            assert response.status_code == 200
            chunks = response.aiter_raw()
            await anext(chunks)  # the call is under way: quota reserved
            assert await quota_units(redis, caller) == 4
            doomed.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(doomed.process.wait, 10)
            with pytest.raises(httpx.HTTPError):
                async for _ in chunks:
                    pass
            await response.aclose()
    assert await usage_events(redis, caller) == []  # the dead gateway never committed
    scripts = LuaScripts(redis)
    deadline = time.monotonic() + 15
    while not await usage_events(redis, caller):  # poll: the reservation is due after 1 s
        assert time.monotonic() < deadline, "the reaper never gave the reservation back"
        await reap_expired(redis, scripts, per_call_limit=100)
        await asyncio.sleep(0.2)
    [event] = await usage_events(redis, caller)
    assert_not_billed(event, "cancelled", "reaped")
    assert event["request_id"] == "doomed-1"  # the client's id, kept in the reservation
    assert len(event["call_id"]) == 32
    assert await quota_units(redis, caller) == 5
    # Reaping is idempotent: a second pass gives nothing back twice.
    await reap_expired(redis, scripts, per_call_limit=100)
    assert await quota_units(redis, caller) == 5
    assert len(await usage_events(redis, caller)) == 1


# -- Property 34: Correlation ID Presence -----------------------------------------------------


UPSTREAM_500 = b'{"messages": [{"role": "user", "content": "[[mock status=500]]"}]}'


def error_requests(
    agent_id: str, api_key: str
) -> dict[str, tuple[str, str, dict[str, str], bytes, str]]:
    """name -> (method, path, headers, body, expected code)."""
    chat_path = f"/proxy/v1/agents/{agent_id}/chat"
    key = {"X-AgentLink-Key": api_key}
    good = b'{"messages": [{"role": "user", "content": "hi"}]}'
    return {
        "no key": ("POST", chat_path, {}, good, "40103"),
        "unknown agent": ("POST", "/proxy/v1/agents/nope/chat", key, good, "40401"),
        "unknown route": ("GET", "/nope", {}, b"", "40403"),
        "wrong method": ("GET", chat_path, key, b"", "40501"),
        "bad json": ("POST", chat_path, key, b"{", "40001"),
        "invalid body": ("POST", chat_path, key, b'{"messages": 1}', "40002"),
        "too large": ("POST", chat_path, key, b"x" * 2_000_000, "41301"),
        "upstream 500": ("POST", chat_path, key, UPSTREAM_500, "50301"),
    }


CASES = list(error_requests("agent", "key"))


@pytest.mark.parametrize("case", CASES)
async def test_every_error_carries_a_request_id(
    faults_gateway: str, db_pool: asyncpg.Pool, case: str
) -> None:
    caller = await charged_caller(db_pool)
    method, path, headers, body, code = error_requests(caller.agent.agent_id, caller.key.plaintext)[
        case
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        generated = await client.request(
            method, faults_gateway + path, headers=headers, content=body
        )
        echoed = await client.request(
            method,
            faults_gateway + path,
            headers={**headers, "X-Request-ID": f"client-{case.replace(' ', '-')}"},
            content=body,
        )
    for response in (generated, echoed):
        envelope = response.json()
        assert envelope["error"]["code"] == code
        assert response.status_code == int(code[:3])
        assert envelope["request_id"] == response.headers["x-request-id"]
    assert len(generated.headers["x-request-id"]) == 36  # a fresh UUID
    assert echoed.headers["x-request-id"] == f"client-{case.replace(' ', '-')}"


async def test_quota_and_rate_refusals_carry_a_request_id(
    start_gateway: Any, db_pool: asyncpg.Pool
) -> None:
    url = start_gateway(RATE_LIMIT_WINDOW_S="3600", RATE_LIMIT_FREE_PER_MIN="1")
    exhausted = await make_caller(db_pool, quota=0, trials_used=3)
    limited = await make_caller(db_pool)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await chat(client, url, exhausted, headers={"X-Request-ID": "q-1"})
        assert assert_error(response, 429, "42901")["request_id"] == "q-1"
        assert (await chat(client, url, limited)).status_code == 200
        response = await chat(client, url, limited, headers={"X-Request-ID": "r-1"})
        assert assert_error(response, 429, "42902")["request_id"] == "r-1"


@pytest.mark.parametrize("sent", ["has spaces", "x" * 129, "semi;colon", ""])
async def test_an_unusable_client_request_id_is_replaced(
    gateway_url: str, db_pool: asyncpg.Pool, sent: str
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await chat(
            client, gateway_url, caller, key="bad", headers={"X-Request-ID": sent}
        )
    body = assert_error(response, 401, "40103")
    assert body["request_id"] != sent
    assert len(body["request_id"]) == 36


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request_id=st.from_regex(r"[A-Za-z0-9._:\-]{1,128}", fullmatch=True))
async def test_property_34_a_sane_client_request_id_is_echoed(
    gateway_url: str, request_id: str
) -> None:
    """Property 34: Correlation ID Presence."""
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gateway_url}/proxy/v1/agents/x/chat", headers={"X-Request-ID": request_id}
        )
    body = assert_error(response, 401, "40103")
    assert body["request_id"] == request_id
