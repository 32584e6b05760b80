"""Fallbacks end to end: a real gateway, the mock provider, real Redis and Postgres.

An agent's fallbacks are tried in order when its model fails before anything reached the
client, and only for failures that another provider could answer (down, timing out, open
breaker, misconfigured), never for a request the provider rejected. The call is admitted
once and committed once, whichever target answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as redis_asyncio

from common.domain import ModelTarget
from devstack.servers import free_port
from tests.gateway.helpers import (
    NO_BREAKER,
    Caller,
    assert_error,
    chat,
    every_provider_at,
    gateway,
    in_band_error,
    make_caller,
    quota_units,
    sse_events,
    wait_for_events,
)

SECRET = "You are a careful assistant. FALLBACK-SECRET-PROMPT."
TO_ANTHROPIC = (ModelTarget("anthropic", "claude-mock"),)


@pytest.fixture(scope="module")
def dead_primary_gateway(gateway_env: dict[str, str], mock_provider_url: str) -> Iterator[str]:
    """OpenAI points at a port nobody listens on; Anthropic and Google at the mock."""
    dead = {"OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    with gateway(gateway_env, **(every_provider_at(mock_provider_url) | dead)) as url:
        yield url


@pytest.fixture(scope="module")
def live_primary_gateway(gateway_env: dict[str, str], mock_provider_url: str) -> Iterator[str]:
    """Every provider at the mock, and a breaker that never opens (failures on purpose)."""
    with gateway(gateway_env, **every_provider_at(mock_provider_url), **NO_BREAKER) as url:
        yield url


async def caller_with_fallbacks(
    db: asyncpg.Pool,
    fallbacks: tuple[ModelTarget, ...] = TO_ANTHROPIC,
    provider: str = "openai",
) -> Caller:
    """Trials spent, so a billed call shows in the quota balance."""
    return await make_caller(db, quota=5, tier="paid", system_prompt=SECRET, trials_used=3,
                             provider=provider, fallbacks=fallbacks)  # fmt: skip


async def call(
    gateway_url: str, db: asyncpg.Pool, what: str, directive: str = "", *, stream: bool = False,
    fallbacks: tuple[ModelTarget, ...] = TO_ANTHROPIC,
) -> tuple[Caller, str, httpx.Response]:  # fmt: skip
    """One call by a new `caller_with_fallbacks`, marked `what-<random>`, with a mock directive;
    returns (the caller, the marker, the response)."""
    caller = await caller_with_fallbacks(db, fallbacks)
    marker = f"{what}-{uuid.uuid4().hex}"
    content = f"{marker} {directive}" if directive else marker
    async with httpx.AsyncClient(timeout=30) as client:
        response = await chat(client, gateway_url, caller, content, stream=stream)
    return caller, marker, response


async def mock_requests(mock_url: str, marker: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient() as client:
        entries = (await client.get(f"{mock_url}/_mock/requests")).json()
    return [e for e in entries if marker in orjson.dumps(e["body"]).decode()]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_dead_primary_falls_back_to_the_next_target_billed_once(
    dead_primary_gateway: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    stream: bool,
) -> None:
    caller, marker, response = await call(dead_primary_gateway, db_pool, "fallback", stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        events = sse_events(response.text)
        assert events[-1] == b"[DONE]"
        text = "".join(
            choice["delta"].get("content") or ""
            for event in events[:-1]
            for choice in orjson.loads(event)["choices"]
        )
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert text == f"Mock reply to: {marker}"
    assert SECRET not in response.text
    # The fallback got the creator's prompt in Anthropic's system field, with its own model.
    [upstream] = await mock_requests(mock_provider_url, marker)
    assert upstream["path"] == "/v1/messages"
    body = upstream["body"]
    assert isinstance(body, dict)
    assert body["model"] == "claude-mock"
    [system] = body["system"]
    assert SECRET in system["text"]  # wrapped in the version's leak-guard canary
    # One admission, one commit: billed once.
    [event] = await wait_for_events(redis, caller, 1)
    assert event["billable"] == "1"
    assert event["status"] == "success"
    assert event["units"] == "1"
    assert await quota_units(redis, caller) == 4


async def test_fallbacks_are_tried_in_order_past_an_unconfigured_provider(
    dead_primary_gateway: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    """openai is down, "nowhere" is not configured, google answers; anthropic (after it) is
    never called."""
    fallbacks = (
        ModelTarget("nowhere", "x"),
        ModelTarget("google", "gemini-mock"),
        ModelTarget("anthropic", "claude-mock"),
    )
    caller, marker, response = await call(
        dead_primary_gateway, db_pool, "ordered", fallbacks=fallbacks
    )
    assert response.status_code == 200, response.text
    [upstream] = await mock_requests(mock_provider_url, marker)
    assert upstream["path"] == "/v1beta/models/gemini-mock:generateContent"
    [event] = await wait_for_events(redis, caller, 1)
    assert event["billable"] == "1"


async def test_when_every_target_fails_the_call_fails_once_and_costs_nothing(
    live_primary_gateway: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    caller, marker, response = await call(
        live_primary_gateway, db_pool, "all-fail", "[[mock status=500]]"
    )
    body = assert_error(response, 503, "50301")
    assert "mock" not in body["error"]["message"]
    paths = [entry["path"] for entry in await mock_requests(mock_provider_url, marker)]
    assert paths == ["/v1/chat/completions", "/v1/messages"]  # both tried, in order
    [event] = await wait_for_events(redis, caller, 1)
    assert event["billable"] == "0"
    assert event["error_code"] == "50301"
    assert await quota_units(redis, caller) == 5


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_the_primary_rejects_does_not_fall_back(
    live_primary_gateway: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    stream: bool,
) -> None:
    caller, marker, response = await call(
        live_primary_gateway, db_pool, "rejected", "[[mock status=400]]", stream=stream
    )
    assert_error(response, 400, "40001")
    paths = [entry["path"] for entry in await mock_requests(mock_provider_url, marker)]
    assert paths == ["/v1/chat/completions"]  # the fallback was never called
    [event] = await wait_for_events(redis, caller, 1)
    assert event["billable"] == "0"
    assert await quota_units(redis, caller) == 5


async def test_a_stream_that_breaks_after_the_first_byte_does_not_fall_back(
    live_primary_gateway: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    caller, marker, response = await call(
        live_primary_gateway, db_pool, "broken", "[[mock chunks=5 break_after=2]]", stream=True
    )
    assert response.status_code == 200
    error = in_band_error(response.text)
    assert error is not None
    assert error["error"]["code"] == "50301"
    paths = [entry["path"] for entry in await mock_requests(mock_provider_url, marker)]
    assert paths == ["/v1/chat/completions"]
    [event] = await wait_for_events(redis, caller, 1)
    assert event["billable"] == "0"
    assert await quota_units(redis, caller) == 5
