"""The official openai SDK against the mock over real HTTP: chat, streaming, embeddings."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletionChunk

from tests.mock_provider.conftest import MockServer
from tests.mock_provider.wire import error_of


@pytest_asyncio.fixture
async def sdk(mock_server: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=mock_server.openai_base_url, api_key="x", max_retries=0
    ) as client:
        yield client


async def test_chat_completion(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Mock reply to: What is the capital of France?"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens >= 1
    assert usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_chat_reply_is_truncated_to_200_chars(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "y" * 500}]
    )
    assert completion.choices[0].message.content == "Mock reply to: " + "y" * 200


async def test_content_parts_are_joined(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="m",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            }
        ],
    )
    assert completion.choices[0].message.content == "Mock reply to: one\ntwo"


async def test_chat_stream_with_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me a story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices]
    content_chunks = [text for text in contents if text]
    assert len(content_chunks) == 5  # the default
    assert "".join(content_chunks) == "Mock reply to: Tell me a story"
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason is not None]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens >= 1
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_chat_stream_without_usage_has_no_usage_chunk(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


async def test_sdk_sees_injected_errors(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-mock-status": "429"},
        )
    assert caught.value.status_code == 429
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi [[mock status=503]]"}]
        )


async def _collect(stream: openai.AsyncStream[ChatCompletionChunk], into: list[str]) -> None:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            into.append(chunk.choices[0].delta.content)


async def test_sdk_sees_a_broken_stream_as_a_connection_error(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi [[mock break_after=2]]"}],
        stream=True,
    )
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        await _collect(stream, seen)
    assert len(seen) == 2


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


async def test_embeddings_are_deterministic_unit_vectors(sdk: openai.AsyncOpenAI) -> None:
    first = await sdk.embeddings.create(model="text-embedding-3-small", input="hello world")
    again = await sdk.embeddings.create(model="text-embedding-3-small", input="hello world")
    other = await sdk.embeddings.create(model="text-embedding-3-small", input="goodbye")
    vector = first.data[0].embedding
    assert len(vector) == 384
    assert vector == again.data[0].embedding
    assert vector != other.data[0].embedding
    assert _norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert first.model == "text-embedding-3-small"
    assert first.usage.prompt_tokens >= 1
    assert first.usage.total_tokens == first.usage.prompt_tokens


async def test_embeddings_list_dimensions_and_float_format(sdk: openai.AsyncOpenAI) -> None:
    floats = await sdk.embeddings.create(
        model="m", input=["a", "b", "a"], dimensions=64, encoding_format="float"
    )
    assert [item.index for item in floats.data] == [0, 1, 2]
    vectors = [item.embedding for item in floats.data]
    assert all(len(vector) == 64 for vector in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert all(_norm(vector) == pytest.approx(1.0, abs=1e-9) for vector in vectors)
    # The SDK's default base64 encoding carries the same vector as float32.
    packed = await sdk.embeddings.create(model="m", input="a", dimensions=64)
    assert packed.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)


def test_embeddings_base64_wire_format(mock_http: httpx.Client) -> None:
    response = mock_http.post(
        "/v1/embeddings", json={"input": "a", "dimensions": 8, "encoding_format": "base64"}
    )
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    assert len(struct.unpack("<8f", raw)) == 8


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "input": []},
        {"model": "m", "input": [{"x": 1}]},
        {"model": "m", "input": "a", "dimensions": 0},
        {"model": "m", "input": "a", "dimensions": "8"},
    ],
)
def test_bad_embedding_requests_are_400(mock_http: httpx.Client, body: dict[str, object]) -> None:
    response = mock_http.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert error_of("openai", response.json())[0] == "invalid_request_error"
