"""The official Anthropic SDK against the gateway's Messages API (`base_url=.../agents/{id}`),
sync and async, stream and not, for agents on OpenAI-format and Anthropic providers: the
real event sequence, tool use, Anthropic-shaped errors (refused fields, missing max_tokens,
bad key, exhausted quota without retries, a stream broken midway), the leak guard, and one
billable usage event per call."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import anthropic
import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio

from gateway.leak_guard import WITHHELD_NOTICE
from mock_provider.controls import render_directive
from tests.gateway.helpers import (
    Caller,
    make_caller,
    mock_requests_containing,
    usage_events,
    wait_for_events,
)

MODELS = {"openai": "mock-model", "anthropic": "claude-mock"}
PROVIDERS = sorted(MODELS)
PROMPT = (
    "You are Vega, the booking assistant of the Lumen Theatre. Offer the members' presale "
    "before the public sale, never reveal the house seats held for the director, and quote "
    "the staff discount code LUMEN-VEGA-77 only to verified employees."
)
TOOLS: list[Any] = [
    {
        "name": "search",
        "description": "Find seats.",
        "input_schema": {"type": "object", "properties": {"show": {"type": "string"}}},
    }
]


def base_url(gateway_url: str, caller: Caller) -> str:
    return f"{gateway_url}/proxy/v1/agents/{caller.agent.agent_id}"


async def caller_on(db: asyncpg.Pool, provider: str, *, trials_used: int = 0) -> Caller:
    """A fresh developer and key, and an agent with PROMPT on `provider`."""
    return await make_caller(db, system_prompt=PROMPT, trials_used=trials_used,
                             provider=provider, model=MODELS[provider])  # fmt: skip


def client_for(url: str, caller: Caller, **kwargs: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=base_url(url, caller), api_key=caller.key.plaintext, max_retries=0, **kwargs
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_messages_create_sync_and_async(
    every_provider_gateway: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, provider: str
) -> None:
    caller = await caller_on(db_pool, provider, trials_used=3)

    def sync_call() -> anthropic.types.Message:
        with anthropic.Anthropic(
            base_url=base_url(every_provider_gateway, caller),
            api_key=caller.key.plaintext, max_retries=0,
        ) as client:  # fmt: skip
            return client.messages.create(
                model="any", max_tokens=200, messages=[{"role": "user", "content": "hi"}]
            )

    sync_message = await asyncio.to_thread(sync_call)
    async with client_for(every_provider_gateway, caller) as client:
        message = await client.messages.create(
            model="any", max_tokens=200, system="Answer briefly.",
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        )  # fmt: skip
    for answer in (sync_message, message):
        assert answer.type == "message"
        assert answer.role == "assistant"
        assert answer.content[0].type == "text"
        assert answer.content[0].text.startswith("Mock reply to:")
        assert "hi" in answer.content[0].text
        assert answer.stop_reason == "end_turn"
        assert answer.id.startswith("msg_")
        assert answer.usage.output_tokens > 0
        assert answer.usage.input_tokens > 0
        assert (answer.usage.model_extra or {})["cost_units"] == 1
        assert Decimal(str((answer.usage.model_extra or {})["cost"])) == Decimal("0.01")
    events = await wait_for_events(redis, caller, 2)
    assert [(e["billable"], e["units"]) for e in events] == [("1", "1"), ("1", "1")]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_streaming_is_anthropics_event_sequence(
    every_provider_gateway: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, provider: str
) -> None:
    caller = await caller_on(db_pool, provider, trials_used=3)
    messages: Any = [{"role": "user", "content": "hi [[mock chunks=7]]"}]
    async with client_for(every_provider_gateway, caller) as client:
        raw = await client.messages.create(
            model="any", max_tokens=200, messages=messages, stream=True
        )
        events = [event async for event in raw]
        async with client.messages.stream(model="any", max_tokens=200, messages=messages) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert len(kinds[2:-3]) >= 2
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert text.startswith("Mock reply to:")
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert final.usage.input_tokens > 0
    # The cost rides on the final message_delta's usage, beside the cumulative counts.
    delta = events[-2]
    assert delta.type == "message_delta"
    assert (delta.usage.model_extra or {})["cost_units"] == 1
    assert Decimal(str((delta.usage.model_extra or {})["cost"])) == Decimal("0.01")

    def sync_stream() -> str:
        with anthropic.Anthropic(
            base_url=base_url(every_provider_gateway, caller),
            api_key=caller.key.plaintext, max_retries=0,
        ) as client, client.messages.stream(
            model="any", max_tokens=200, messages=messages
        ) as stream:  # fmt: skip
            return "".join(stream.text_stream)

    assert await asyncio.to_thread(sync_stream) == text
    usage = await wait_for_events(redis, caller, 3)
    assert [(e["billable"], e["units"]) for e in usage] == [("1", "1")] * 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_use_and_the_tool_result_turn(
    every_provider_gateway: str,
    db_pool: asyncpg.Pool,
    mock_provider_url: str,
    provider: str,
    stream: bool,
) -> None:
    caller = await caller_on(db_pool, provider)
    result = f"row F, seat {uuid.uuid4().hex}"
    arguments = {"show": "Hamlet", "note": 'two seats, "aisle"\nplease'}
    directive = render_directive(
        {"tool_call": "search", "tool_arguments": json.dumps(arguments), "chunks": "9"}
    )
    messages: Any = [{"role": "user", "content": f"Book me a seat. {directive}"}]
    async with client_for(every_provider_gateway, caller) as client:
        if stream:
            async with client.messages.stream(
                model="any", max_tokens=200, messages=messages, tools=TOOLS
            ) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(
                model="any", max_tokens=200, messages=messages, tools=TOOLS,
                tool_choice={"type": "auto"},
            )  # fmt: skip
        uses = [block for block in message.content if block.type == "tool_use"]
        assert len(uses) == 1
        assert uses[0].name == "search"
        assert uses[0].input == arguments
        assert message.stop_reason == "tool_use"
        # The tool's result goes back as Anthropic's user turn; the model answers it.
        follow_up = await client.messages.create(
            model="any", max_tokens=200, tools=TOOLS,
            messages=[
                {"role": "user", "content": "Book me a seat."},  # no directive now
                {"role": "assistant", "content": message.content},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": result},
                ]},
            ],
        )  # fmt: skip
    assert follow_up.content[0].type == "text"
    assert follow_up.stop_reason == "end_turn"
    # The provider got the tool's result, tied to the call it answers.
    async with httpx.AsyncClient() as http:
        assert await mock_requests_containing(http, mock_provider_url, result) == 1
        assert await mock_requests_containing(http, mock_provider_url, uses[0].id) >= 1


def assert_anthropic_error(
    error: anthropic.APIStatusError, status: int, kind: str, code: str
) -> dict[str, Any]:
    assert error.status_code == status
    body = error.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["error"]["code"] == code
    assert body["request_id"] == error.response.headers["x-request-id"]
    return body


async def test_refused_fields_are_anthropic_400s(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool)
    messages: Any = [{"role": "user", "content": "hi"}]
    async with client_for(gateway_url, caller) as client:
        with pytest.raises(anthropic.BadRequestError) as top_k:
            await client.messages.create(
                model="x", max_tokens=10, messages=messages, extra_body={"top_k": 5}
            )
        with pytest.raises(anthropic.BadRequestError) as thinking:
            await client.messages.create(
                model="x", max_tokens=10, messages=messages,
                thinking={"type": "enabled", "budget_tokens": 1024},
            )  # fmt: skip
        with pytest.raises(anthropic.BadRequestError) as server_tool:
            await client.messages.create(
                model="x", max_tokens=10, messages=messages,
                tools=[{"type": "web_search_20250305", "name": "web_search"}],
            )  # fmt: skip
    for raised, field in ((top_k, "top_k"), (thinking, "thinking"), (server_tool, "tools[0].type")):
        body = assert_anthropic_error(raised.value, 400, "invalid_request_error", "40002")
        assert body["error"]["details"][0]["field"] == field
        assert f"`{field}`" in body["error"]["message"]
    async with httpx.AsyncClient() as http:
        missing = await http.post(
            base_url(gateway_url, caller) + "/v1/messages",
            headers={"x-api-key": caller.key.plaintext, "anthropic-version": "2023-06-01"},
            json={"model": "x", "messages": messages},
        )
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["error"]["details"] == [{"field": "max_tokens", "message": "is required"}]
    assert missing.headers["x-request-id"] == missing.json()["request_id"]
    # Refused before admission: nothing reserved, nothing billed.
    await asyncio.sleep(0.1)
    assert await usage_events(redis, caller) == []


async def test_bad_key_and_exhausted_quota_are_anthropic_errors_without_retries(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool, quota=0)
    sent: list[object] = []

    async def count(request: object) -> None:
        sent.append(request)

    messages: Any = [{"role": "user", "content": "hi"}]
    # The SDK's own HTTP client, counting what it sends.
    async with anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [count]}) as http:
        # The SDK's default retries: a 42901 must not be retried (x-should-retry: false).
        client = anthropic.AsyncAnthropic(
            base_url=base_url(gateway_url, caller), api_key=caller.key.plaintext,
            http_client=http, max_retries=2,
        )  # fmt: skip
        for _ in range(3):  # the free trials
            await client.messages.create(model="x", max_tokens=10, messages=messages)
        sent.clear()
        with pytest.raises(anthropic.RateLimitError) as exhausted:
            await client.messages.create(model="x", max_tokens=10, messages=messages)
        assert len(sent) == 1
    async with anthropic.AsyncAnthropic(
        base_url=base_url(gateway_url, caller), api_key="ak_" + "0" * 32, max_retries=0
    ) as bad:
        with pytest.raises(anthropic.AuthenticationError) as unauthorized:
            await bad.messages.create(model="x", max_tokens=10, messages=messages)
    assert_anthropic_error(exhausted.value, 429, "rate_limit_error", "42901")
    assert exhausted.value.response.headers["x-should-retry"] == "false"
    assert_anthropic_error(unauthorized.value, 401, "authentication_error", "40103")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_leak_guard_holds_and_a_withheld_answer_is_not_billed(
    every_provider_gateway: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    provider: str,
    stream: bool,
) -> None:
    caller = await caller_on(db_pool, provider, trials_used=3)
    messages: Any = [{"role": "user", "content": "Repeat. [[mock echo_system chunks=13]]"}]
    async with client_for(every_provider_gateway, caller) as client:
        if stream:
            async with client.messages.stream(
                model="any", max_tokens=500, messages=messages
            ) as events:
                deltas = [event async for event in events if event.type == "message_delta"]
                message = await events.get_final_message()
            cost_units = (deltas[-1].usage.model_extra or {})["cost_units"]
        else:
            message = await client.messages.create(model="any", max_tokens=500, messages=messages)
            cost_units = (message.usage.model_extra or {})["cost_units"]
    raw = "".join(block.text for block in message.content if block.type == "text")
    for quote in ("house seats held for the director", "LUMEN-VEGA-77", "booking assistant of"):
        assert quote not in raw
        assert quote not in message.model_dump_json()
    assert WITHHELD_NOTICE in raw
    assert message.stop_reason == "refusal"
    assert cost_units == 0
    [event] = await wait_for_events(redis, caller, 1)
    assert (event["billable"], event["status"]) == ("0", "blocked")


async def test_a_stream_broken_midway_ends_with_an_error_event_and_is_not_billed(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool, trials_used=3)
    messages: Any = [{"role": "user", "content": "hi [[mock chunks=8 break_after=3]]"}]
    async with client_for(gateway_url, caller) as client:
        stream = await client.messages.create(
            model="x", max_tokens=100, messages=messages, stream=True
        )
        kinds: list[str] = []

        async def read_all() -> None:
            async for event in stream:
                kinds.append(event.type)

        with pytest.raises(anthropic.APIStatusError) as broken:
            await read_all()
    assert kinds[0] == "message_start"
    assert "message_stop" not in kinds
    body = broken.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "overloaded_error"
    assert body["error"]["code"] == "50301"
    [event] = await wait_for_events(redis, caller, 1)
    assert event["billable"] == "0"
