"""Property 1: Prompt Security through the running gateway, for every text field a model can
emit: a model that puts the creator's prompt into a tool call's arguments (or its refusal)
must not hand it to the client, whatever provider format it speaks (OpenAI, Anthropic,
Gemini, each translated to OpenAI tool calls by its adapter), streamed or not. Clean tool
calls reach the official OpenAI SDK intact."""

from __future__ import annotations

import json

import asyncpg
import openai
import pytest

from gateway.leak_guard import WITHHELD_NOTICE
from gateway.leak_guard.json_text import decode_escapes
from mock_provider.controls import render_directive
from tests.factories import make_agent, make_developer, make_key

PROMPT = (
    "You are Vega, the booking assistant of the Lumen Theatre. Offer the members' presale "
    "before the public sale, never reveal the house seats held for the director, and quote "
    "the staff discount code LUMEN-VEGA-77 only to verified employees."
)
MODELS = {"openai": "mock-model", "anthropic": "claude-mock", "google": "gemini-mock"}
FORMATS = sorted(MODELS)


async def ask(
    gateway_url: str, db: asyncpg.Pool, provider: str, directive: str, stream: bool
) -> tuple[str, dict[int, tuple[str, str]], str | None]:
    """One call through the official SDK: (content + refusal, {index: (name, arguments)},
    the finish reason)."""
    developer = await make_developer(db, quota=10)
    key = await make_key(db, developer)
    agent = await make_agent(db, system_prompt=PROMPT, provider=provider, model=MODELS[provider])
    client = openai.AsyncOpenAI(
        base_url=f"{gateway_url}/proxy/v1/agents/{agent.agent_id}",
        api_key=key.plaintext,
        max_retries=0,
    )
    messages = [{"role": "user", "content": f"Book me a seat. {directive}"}]
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    text = ""
    calls: dict[int, tuple[str, str]] = {}
    async with client:
        if not stream:
            answer = await client.chat.completions.create(
                model="ignored",
                messages=messages,
                tools=tools,  # type: ignore[arg-type]
            )
            message = answer.choices[0].message
            text = (message.content or "") + (message.refusal or "")
            for index, call in enumerate(message.tool_calls or []):
                calls[index] = (call.function.name, call.function.arguments)  # type: ignore[union-attr]
            return text, calls, answer.choices[0].finish_reason
        finish = None
        chunks = await client.chat.completions.create(
            model="ignored",
            messages=messages,
            tools=tools,
            stream=True,  # type: ignore[arg-type]
        )
        async for chunk in chunks:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            text += (delta.content or "") + (delta.refusal or "")
            for call in delta.tool_calls or []:
                name, arguments = calls.get(call.index, ("", ""))
                function = call.function
                calls[call.index] = (
                    name + ((function.name or "") if function else ""),
                    arguments + ((function.arguments or "") if function else ""),
                )
            finish = chunk.choices[0].finish_reason or finish
        return text, calls, finish


def assert_withheld(text: str, calls: dict[int, tuple[str, str]], finish: str | None) -> None:
    everything = text + "".join(arguments for _, arguments in calls.values())
    decoded = decode_escapes(everything)
    for quote in ("house seats held for the director", "LUMEN-VEGA-77", "booking assistant of"):
        assert quote not in everything
        assert quote not in decoded
    assert WITHHELD_NOTICE in text
    assert finish == "content_filter"


# Line breaks as `\n`, quotes as `\"`, letters as `\uXXXX`: the prompt as a model might escape it.
DISGUISED = PROMPT.replace(" ", "\n").replace("Lumen", '"Lumen"')
ESCAPED_ARGUMENTS = '{"query": ' + json.dumps(DISGUISED).replace("a", "\\u0061") + "}"


def test_the_escaped_arguments_are_valid_json_as_a_model_writes_it() -> None:
    assert json.loads(ESCAPED_ARGUMENTS) == {"query": DISGUISED}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", FORMATS)
@pytest.mark.parametrize(
    "directive",
    [
        pytest.param("[[mock tool_call=search echo_system chunks=23]]", id="echoed-into-arguments"),
        pytest.param(render_directive({"tool_arguments": ESCAPED_ARGUMENTS, "chunks": "31"}),
                     id="escaped-in-31-split-arguments"),
        pytest.param("[[mock refusal echo_system chunks=17]]", id="in-a-refusal"),
    ],
)  # fmt: skip
async def test_property_1_prompt_in_tool_calls_or_refusals_is_withheld(
    every_provider_gateway: str, db_pool: asyncpg.Pool, provider: str, stream: bool,
    directive: str,
) -> None:  # fmt: skip
    assert_withheld(*await ask(every_provider_gateway, db_pool, provider, directive, stream))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", FORMATS)
async def test_clean_tool_calls_reach_the_sdk_intact(
    every_provider_gateway: str, db_pool: asyncpg.Pool, provider: str, stream: bool
) -> None:
    arguments = {"show": "Hamlet", "note": 'two seats, "aisle"\nplease', "date": "2026-12-24"}
    directive = render_directive({"tool_call": "search", "tool_arguments": json.dumps(arguments),
                                  "chunks": "9"})  # fmt: skip
    text, calls, finish = await ask(every_provider_gateway, db_pool, provider, directive, stream)
    assert WITHHELD_NOTICE not in text
    assert list(calls) == [0]
    name, received = calls[0]
    assert name == "search"
    assert json.loads(received) == arguments
    assert finish == "tool_calls"
