"""The official OpenAI SDK, sync and async, stream and not, as a new user would use it: the
naive stream loop, the usage chunk only when asked, the cost per call, models.list(), and no
retries of an exhausted quota."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import httpx
import openai
import pytest

from tests.factories import make_agent, make_developer, make_key
from tests.gateway.helpers import make_caller

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hi [[mock chunks=5]]"}]


def base_url(gateway_url: str, agent_id: str) -> str:
    return f"{gateway_url}/proxy/v1/agents/{agent_id}"


def naive_stream_loop_sync(url: str, key: str) -> tuple[str, int]:
    """What most tutorials write: no stream_options, `chunk.choices[0]` on every chunk."""
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
    with client:
        text, chunks = "", 0
        for chunk in client.chat.completions.create(model="x", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            text += chunk.choices[0].delta.content or ""
            chunks += 1
    return text, chunks


@pytest.mark.parametrize("leak_guard", [True, False])
async def test_the_naive_stream_loop_works_sync_and_async(
    gateway_url: str, db_pool: asyncpg.Pool, leak_guard: bool
) -> None:
    key = await make_key(db_pool, await make_developer(db_pool))
    agent = await make_agent(db_pool, leak_guard=leak_guard)
    url = base_url(gateway_url, agent.agent_id)
    text, _ = await asyncio.to_thread(naive_stream_loop_sync, url, key.plaintext)
    assert text == "Mock reply to: hi"
    async with openai.AsyncOpenAI(base_url=url, api_key=key.plaintext, max_retries=0) as c:
        stream = await c.chat.completions.create(model="x", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert "".join(pieces) == "Mock reply to: hi"


async def test_the_usage_chunk_comes_only_when_asked_and_carries_the_cost(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool, trials_used=3, price=Decimal("0.03"))
    url = base_url(gateway_url, caller.agent.agent_id)
    async with openai.AsyncOpenAI(base_url=url, api_key=caller.key.plaintext, max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="x", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = [chunk async for chunk in stream]
    usage_chunks = [chunk for chunk in chunks if chunk.usage is not None]
    assert len(usage_chunks) == 1
    assert usage_chunks[0].choices == []
    usage = usage_chunks[0].usage
    assert usage is not None
    assert usage.completion_tokens > 0
    extra = usage.model_extra or {}
    assert extra["cost_units"] == 3
    assert Decimal(str(extra["cost"])) == Decimal("0.03")


async def test_a_json_answer_carries_its_cost_and_the_cost_headers(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool, trials_used=2)
    url = base_url(gateway_url, caller.agent.agent_id)
    async with openai.AsyncOpenAI(base_url=url, api_key=caller.key.plaintext, max_retries=0) as c:
        trial = await c.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
        paid = await c.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
    # The last free trial call: nothing charged, no trial left.
    assert (trial.headers["x-agentlink-units"], trial.headers["x-agentlink-trials-remaining"]) == (
        "0",
        "0",
    )
    trial_usage = trial.parse().usage
    assert trial_usage is not None
    assert (trial_usage.model_extra or {}) == {"cost": 0, "cost_units": 0}
    assert paid.headers["x-agentlink-units"] == "1"
    paid_usage = paid.parse().usage
    assert paid_usage is not None
    assert (paid_usage.model_extra or {})["cost_units"] == 1
    assert Decimal(str((paid_usage.model_extra or {})["cost"])) == Decimal("0.01")
    assert paid.parse().choices[0].message.content == "Mock reply to: hi"


async def test_sync_client_json_and_trials_header(gateway_url: str, db_pool: asyncpg.Pool) -> None:
    caller = await make_caller(db_pool)

    def call() -> tuple[str, str]:
        client = openai.OpenAI(
            base_url=base_url(gateway_url, caller.agent.agent_id),
            api_key=caller.key.plaintext, max_retries=0,
        )  # fmt: skip
        with client:
            raw = client.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
        return raw.parse().choices[0].message.content or "", raw.headers[
            "x-agentlink-trials-remaining"
        ]

    content, trials_left = await asyncio.to_thread(call)
    assert content == "Mock reply to: hi"
    assert trials_left == "2"  # 3 free trials, this call used one


async def test_models_list_and_retrieve(gateway_url: str, db_pool: asyncpg.Pool) -> None:
    caller = await make_caller(db_pool)
    agent_id = caller.agent.agent_id
    url = base_url(gateway_url, agent_id)
    async with openai.AsyncOpenAI(base_url=url, api_key=caller.key.plaintext, max_retries=0) as c:
        models = [model async for model in c.models.list()]
        one = await c.models.retrieve(agent_id)
        with pytest.raises(openai.NotFoundError):
            await c.models.retrieve("gpt-4o")
    assert [model.id for model in models] == [agent_id]
    assert one.id == agent_id
    assert one.object == "model"
    assert one.created > 1_700_000_000
    async with openai.AsyncOpenAI(base_url=url, api_key="ak_" + "0" * 32, max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            await c.models.list()


async def test_an_exhausted_quota_is_not_retried_by_the_sdk(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool, quota=0, trials_used=3)
    requests = 0

    async def count(request: httpx.Request) -> None:
        nonlocal requests
        requests += 1

    http = httpx.AsyncClient(event_hooks={"request": [count]})
    url = base_url(gateway_url, caller.agent.agent_id)
    client = openai.AsyncOpenAI(base_url=url, api_key=caller.key.plaintext, http_client=http)
    async with client:
        with pytest.raises(openai.RateLimitError) as raised:
            await client.chat.completions.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
    assert requests == 1  # the SDK's default is two retries of a 429
    headers = raised.value.response.headers
    assert headers["x-should-retry"] == "false"
    assert "retry-after" not in headers
    assert raised.value.body["code"] == "42901"  # type: ignore[index]


async def test_the_rate_limit_still_says_when_to_retry(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)
    url = base_url(gateway_url, caller.agent.agent_id)
    async with openai.AsyncOpenAI(base_url=url, api_key=caller.key.plaintext, max_retries=0) as c:
        for _ in range(10):  # the free tier's limit
            await c.chat.completions.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as raised:
            await c.chat.completions.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
    headers = raised.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert "x-should-retry" not in headers
