"""End to end through real HTTP: the official OpenAI SDK → gateway → mock provider, with the
real Redis and Postgres behind the gateway."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import httpx
import openai
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from tests.factories import Developer, make_agent, make_developer, make_key
from tests.gateway.helpers import chat, make_caller


def sdk(gateway_url: str, agent_id: str, key: str, *, bearer: bool = True) -> openai.AsyncOpenAI:
    base_url = f"{gateway_url}/proxy/v1/agents/{agent_id}"
    if bearer:
        return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)
    return openai.AsyncOpenAI(
        base_url=base_url, api_key="unused", default_headers={"X-AgentLink-Key": key},
        max_retries=0,
    )  # fmt: skip


async def usage_events(
    redis: redis_asyncio.Redis, developer: Developer
) -> list[dict[bytes, bytes]]:
    """The developer's usage events. The stream is per shard and shared with other tests'
    users; a success is committed just after its response went out, hence the short wait."""
    user_id = developer.user_id.encode()
    for _ in range(250):
        entries = await redis.xrange(keyspace.usage_stream(developer.shard))
        mine = [fields for _, fields in entries if fields.get(b"user_id") == user_id]
        if mine:
            return mine
        await asyncio.sleep(0.02)
    return []


@pytest.mark.parametrize("bearer", [True, False])
async def test_non_streaming_call_through_the_openai_sdk(
    gateway_url: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    bearer: bool,
) -> None:
    developer = await make_developer(db_pool, quota=50)
    key = await make_key(db_pool, developer)
    agent = await make_agent(db_pool, system_prompt="HIDDEN PROMPT: speak like a pirate.")
    client = sdk(gateway_url, agent.agent_id, key.plaintext, bearer=bearer)
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="anything", messages=[{"role": "user", "content": "hello there"}]
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Mock reply to: hello there"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    assert raw.headers["x-ratelimit-limit"] == "10"
    assert raw.headers["x-ratelimit-remaining"] == "9"
    assert int(raw.headers["x-ratelimit-reset"]) in range(1, 61)
    assert raw.headers["x-quota-remaining"] == "50"  # a trial call: quota untouched
    assert raw.headers["x-request-id"]
    assert "HIDDEN PROMPT" not in raw.http_response.text

    async with httpx.AsyncClient() as http:
        recorded = (await http.get(f"{mock_provider_url}/_mock/requests")).json()
    upstream = next(
        entry["body"] for entry in reversed(recorded)
        if entry["body"]["messages"][-1]["content"] == "hello there"
    )  # fmt: skip
    system = upstream["messages"][0]
    assert system["role"] == "system"
    # The creator's prompt, wrapped in its version's leak-guard canary.
    assert re.fullmatch(
        r"\[Instruction set (\w{12})\]\nHIDDEN PROMPT: speak like a pirate\.\n"
        r"\[End of instruction set \1\]",
        system["content"],
    )
    assert upstream["model"] == "mock-model"  # the agent's model, not the developer's
    assert upstream["temperature"] == 0.3

    [event] = await usage_events(redis, developer)
    assert event[b"billable"] == b"1"
    assert event[b"status"] == b"success"
    assert event[b"agent_id"].decode() == agent.agent_id
    assert event[b"key_id"].decode() == key.key_id
    assert event[b"charge"] == b"trial"
    assert int(event[b"output_tokens"]) > 0


async def test_streaming_call_through_the_openai_sdk(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    developer = await make_developer(db_pool)
    key = await make_key(db_pool, developer)
    # Guard off: the stream is a byte-for-byte passthrough, chunk for chunk.
    agent = await make_agent(db_pool, leak_guard=False)
    async with sdk(gateway_url, agent.agent_id, key.plaintext) as client:
        stream = await client.chat.completions.create(
            model="x",
            messages=[{"role": "user", "content": "stream please [[mock chunks=7]]"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
    assert "".join(pieces) == "Mock reply to: stream please"
    assert len(pieces) == 7
    assert usage is not None
    assert usage.completion_tokens > 0
    [event] = await usage_events(redis, developer)
    assert event[b"billable"] == b"1"
    assert int(event[b"output_tokens"]) == usage.completion_tokens


async def test_sse_response_headers_stop_proxy_buffering(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await chat(client, gateway_url, caller, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.text.rstrip().endswith("data: [DONE]")


async def test_agent_ids_in_any_case_reach_the_same_agent(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)
    agent_id = caller.agent.agent_id
    async with httpx.AsyncClient() as client:
        for spelling in (agent_id.upper(), agent_id.replace("-", "")):
            response = await chat(client, gateway_url, caller, agent_id=spelling)
            assert response.status_code == 200, response.text


async def test_a_version_postgres_does_not_have_yet_is_a_503_not_a_500(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool)
    # What the gateway sees between the control plane's Redis write and its commit.
    await redis.hset(keyspace.agent_record(caller.agent.agent_id),
                     mapping={"status": "active", "version": "2", "units": "1"})  # fmt: skip
    async with httpx.AsyncClient() as client:
        response = await chat(client, gateway_url, caller)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "50302"
