"""Prompt caching through a real gateway, with the official OpenAI and Anthropic SDKs: the
agent's prompt (framed by its version's canary) is the same bytes on every call, so the
provider's prompt cache (here the mock's, which reports a repeated prefix in each provider's
own usage fields) hits from the second call; the cached prompt tokens reach the caller's
`usage` in both dialects, the usage event and call_logs.cached_input_tokens. An agent's
`prompt_cache` marks its prompt with Anthropic's `cache_control` (Anthropic caches nothing
unmarked); OpenAI and Gemini cache without a mark, and the OpenAI format gets none. (The mock
caches for requests whose message says `[[mock cache]]`.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import pytest
import redis.asyncio as redis_asyncio

from control_plane.usage_ingest import ingest_once
from gateway.leak_guard import plant_canary
from tests.factories import make_agent, make_developer, make_key
from tests.gateway.helpers import Caller, wait_for_events

MODELS = {"openai": "mock-model", "anthropic": "claude-mock", "google": "gemini-mock"}


def _prompt() -> str:
    """A prompt of its own per agent, long enough to be worth caching (~1,000 tokens)."""
    return (f"You are tutor {uuid.uuid4().hex}. Explain every step and check the work. " * 60)[
        :4000
    ]


def _cached_tokens(prompt: str) -> int:
    """What the mock counts for the framed prompt (four characters a token)."""
    return len(plant_canary(prompt, "C" * 12)) // 4


async def _caller(db: asyncpg.Pool, provider: str, *, prompt_cache: bool) -> tuple[Caller, str]:
    developer = await make_developer(db, quota=100)
    key = await make_key(db, developer)
    prompt = _prompt()
    agent = await make_agent(db, provider=provider, model=MODELS[provider], system_prompt=prompt,
                             prompt_cache=prompt_cache)  # fmt: skip
    return Caller(developer, key, agent), prompt


def _base_url(url: str, caller: Caller) -> str:
    return f"{url}/proxy/v1/agents/{caller.agent.agent_id}"


def _openai_cached(usage: Any) -> int:
    details = usage.prompt_tokens_details
    return 0 if details is None else int(details.cached_tokens or 0)


@pytest.mark.parametrize("provider", sorted(MODELS))
async def test_repeated_calls_hit_the_prompt_cache_through_the_openai_sdk(
    every_provider_gateway: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, provider: str
) -> None:
    caller, prompt = await _caller(db_pool, provider, prompt_cache=True)
    cached = _cached_tokens(prompt)
    base_url = _base_url(every_provider_gateway, caller)
    messages: Any = [{"role": "user", "content": "what is 2 + 2? [[mock cache]]"}]
    async with openai.AsyncOpenAI(base_url=base_url, api_key=caller.key.plaintext,
                                  max_retries=0) as client:  # fmt: skip
        first = await client.chat.completions.create(model="any", messages=messages)

        def sync_call() -> Any:
            with openai.OpenAI(base_url=base_url, api_key=caller.key.plaintext,
                               max_retries=0) as sync_client:  # fmt: skip
                return sync_client.chat.completions.create(model="any", messages=messages)

        second = await asyncio.to_thread(sync_call)
        stream = await client.chat.completions.create(
            model="any", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert _openai_cached(first.usage) == 0
    assert _openai_cached(second.usage) == cached
    assert second.usage is not None
    assert second.usage.prompt_tokens > cached  # cached tokens are part of the prompt's
    assert chunks[-1].choices == []
    assert _openai_cached(chunks[-1].usage) == cached
    if provider == "anthropic":  # the first call wrote the cache (the SDK's cache_write_tokens)
        assert first.usage is not None
        assert first.usage.prompt_tokens_details is not None
        assert first.usage.prompt_tokens_details.cache_write_tokens == cached

    events = await wait_for_events(redis, caller, 3)
    assert [e["cached_input_tokens"] for e in events] == ["0", str(cached), str(cached)]
    assert [e["billable"] for e in events] == ["1", "1", "1"]  # billed as any call
    await ingest_once(redis, db_pool)
    rows = await db_pool.fetch(
        "SELECT cached_input_tokens, input_tokens FROM call_logs WHERE user_id = $1"
        " ORDER BY created_at", caller.developer.user_id,
    )  # fmt: skip
    assert sorted(row["cached_input_tokens"] for row in rows) == [0, cached, cached]
    assert all(row["input_tokens"] >= row["cached_input_tokens"] for row in rows)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_the_anthropic_sdk_sees_cache_reads_and_writes(
    every_provider_gateway: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, provider: str
) -> None:
    caller, prompt = await _caller(db_pool, provider, prompt_cache=True)
    cached = _cached_tokens(prompt)
    messages: Any = [{"role": "user", "content": "hi [[mock cache]]"}]
    url = _base_url(every_provider_gateway, caller)
    async with anthropic.AsyncAnthropic(base_url=url, api_key=caller.key.plaintext,
                                        max_retries=0) as client:  # fmt: skip
        first = await client.messages.create(model="any", max_tokens=100, messages=messages)
        second = await client.messages.create(model="any", max_tokens=100, messages=messages)
        raw = await client.messages.create(
            model="any", max_tokens=100, messages=messages, stream=True
        )
        events = [event async for event in raw]
    # Anthropic's input_tokens leave the cached prefix out; OpenAI reports no cache writes.
    assert first.usage.cache_creation_input_tokens == (cached if provider == "anthropic" else 0)
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == cached
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == (
        first.usage.input_tokens + (first.usage.cache_creation_input_tokens or 0) - cached
    )
    [delta] = [event for event in events if event.type == "message_delta"]
    assert delta.usage.cache_read_input_tokens == cached
    usage_events = await wait_for_events(redis, caller, 3)
    assert [e["cached_input_tokens"] for e in usage_events] == ["0", str(cached), str(cached)]


async def _system_sent(mock_url: str, marker: str) -> Any:
    async with httpx.AsyncClient() as client:
        recorded = (await client.get(f"{mock_url}/_mock/requests")).json()
    [body] = [entry["body"] for entry in recorded if marker in str(entry["body"])]
    return body["system"] if "system" in body else body["messages"][0]["content"]


@pytest.mark.parametrize(("provider", "opted_in"),
                         [("anthropic", True), ("anthropic", False), ("openai", True)])  # fmt: skip
async def test_only_an_opted_in_agent_on_anthropic_marks_its_prompt(
    every_provider_gateway: str, mock_provider_url: str, db_pool: asyncpg.Pool, provider: str,
    opted_in: bool,
) -> None:  # fmt: skip
    caller, prompt = await _caller(db_pool, provider, prompt_cache=opted_in)
    base_url = _base_url(every_provider_gateway, caller)
    reads = []
    async with openai.AsyncOpenAI(base_url=base_url, api_key=caller.key.plaintext,
                                  max_retries=0) as client:  # fmt: skip
        for _ in range(2):
            marker = uuid.uuid4().hex
            answer = await client.chat.completions.create(
                model="any", messages=[{"role": "user", "content": f"hi {marker} [[mock cache]]"}]
            )
            reads.append(_openai_cached(answer.usage))
    system = await _system_sent(mock_provider_url, marker)
    if provider == "openai":
        assert isinstance(system, str)  # no mark in the OpenAI format
        assert prompt in system
        assert reads == [0, _cached_tokens(prompt)]  # OpenAI caches without one
        return
    [block] = system
    assert prompt in block["text"]
    if opted_in:
        assert block["cache_control"] == {"type": "ephemeral"}
        assert reads == [0, _cached_tokens(prompt)]
    else:
        assert "cache_control" not in block
        assert reads == [0, 0]  # Anthropic caches nothing unmarked
