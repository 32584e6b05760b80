"""The provider contract: one suite, every adapter ("openai", "anthropic", "google"), each
against the mock provider speaking that provider's wire format over real HTTP.

Whatever the provider speaks, an adapter answers in OpenAI's format, reports usage, says
whether a stream completed, and lets errors out only as `gateway.providers.errors` classes
whose messages never quote the provider's body.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
import pytest_asyncio

from common.domain import AgentConfig
from common.sse import events_of
from devstack.servers import free_port
from gateway.chat_request import ChatRequest, build_upstream_payload
from gateway.providers import ADAPTERS
from gateway.providers.base import ChatProvider, ChatStream, Usage
from gateway.providers.errors import (
    ProviderError,
    ProviderMisconfigured,
    ProviderRejectedRequest,
    ProviderTimeout,
    ProviderUnavailable,
)
from tests.support import serve

PROVIDERS = ["openai", "anthropic", "google"]
SECRET = "You are a careful assistant. CONTRACT-SECRET-PROMPT."
# Fixed token counts, so usage is the same whatever the wire format.
TOKENS = "[[mock prompt_tokens=11 completion_tokens=7]]"


def base_url(provider: str, mock_url: str) -> str:
    """Each provider's base URL as its settings would hold it (see gateway/settings.py)."""
    return f"{mock_url}/v1" if provider == "openai" else mock_url


AdapterFactory = Callable[..., ChatProvider]


@pytest_asyncio.fixture
async def make_adapter(mock_provider_url: str) -> AsyncIterator[AdapterFactory]:
    """Adapters on aiohttp sessions made in the test's event loop; closed after the test."""
    made: list[ChatProvider] = []

    def make(provider: str, *, sock_read: float = 10.0, url: str | None = None) -> ChatProvider:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=sock_read)
        )
        adapter = ADAPTERS[provider](
            provider, url or base_url(provider, mock_provider_url), "mock-key", session
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


def payload(content: str, *, stream: bool = False, system_prompt: str = SECRET) -> dict[str, Any]:
    """What the gateway sends an adapter: build_upstream_payload's OpenAI-format request."""
    config = AgentConfig(
        system_prompt=system_prompt,
        provider="any",
        model="mock-model",
        temperature=0.3,
        max_tokens=200,
    )
    request = ChatRequest(
        messages=[{"role": "user", "content": content}], stream=stream, options={}
    )
    return build_upstream_payload(config, request)


async def read_stream(chat_stream: ChatStream) -> list[bytes | Usage]:
    """Every item of a stream: its bytes, then (if it completed) its usage."""
    return [item async for item in chat_stream]


def split_items(items: list[bytes | Usage]) -> tuple[bytes, list[Usage]]:
    """The stream's bytes, and the usages it yielded (one, as its last item, if complete)."""
    usages = [item for item in items if isinstance(item, Usage)]
    if usages:
        assert items[-1] is usages[-1]  # nothing follows the usage
    return b"".join(item for item in items if isinstance(item, bytes)), usages


async def call(adapter: ChatProvider, request: dict[str, Any], *, stream: bool) -> None:
    """One call, a stream read to its end."""
    if stream:
        async with adapter.stream(request, headers={}) as chat_stream:
            await read_stream(chat_stream)
    else:
        await adapter.complete(request, headers={})


async def collect(
    adapter: ChatProvider, request: dict[str, Any], items: list[bytes | Usage]
) -> None:
    """Read a stream as far as it goes, into `items`."""
    async with adapter.stream(request, headers={}) as chat_stream:
        async for item in chat_stream:
            items.append(item)


def sse_data(raw: bytes) -> list[bytes]:
    return [event.data for event in events_of(raw)]


def chunk_objects(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(data) for data in sse_data(raw) if data != b"[DONE]"]


def streamed_text(raw: bytes) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in chunk_objects(raw)
        for choice in chunk["choices"]
    )


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_completion_is_an_openai_chat_completion(
    make_adapter: AdapterFactory, provider: str
) -> None:
    adapter = make_adapter(provider)
    completion = await adapter.complete(payload(f"hello there {TOKENS}"), headers={})
    body = orjson.loads(completion.body)
    assert body["object"] == "chat.completion"
    assert body["id"]
    assert isinstance(body["created"], int)
    assert body["model"]
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Mock reply to: hello there"
    assert choice["finish_reason"] == "stop"
    # No prompt cache hit (OpenAI's own answer says so; the translated ones leave it out).
    assert body["usage"].pop("prompt_tokens_details", None) in (None, {"cached_tokens": 0})
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert completion.usage == Usage(input_tokens=11, output_tokens=7, finish_reasons=("stop",))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_is_openai_chunks_ending_with_finish_usage_and_done(
    make_adapter: AdapterFactory, provider: str
) -> None:
    adapter = make_adapter(provider)
    async with adapter.stream(
        payload(f"hello there {TOKENS} [[mock chunks=5]]", stream=True), headers={}
    ) as chat_stream:
        raw, usages = split_items(await read_stream(chat_stream))
    assert streamed_text(raw) == "Mock reply to: hello there"
    assert raw.endswith(b"data: [DONE]\n\n")
    chunks = chunk_objects(raw)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 2  # streamed, not one blob
    *_, finish, usage = chunks
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"].pop("prompt_tokens_details", None) in (None, {"cached_tokens": 0})
    assert usage["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    # The usage, last: the answer completed.
    assert usages == [Usage(input_tokens=11, output_tokens=7, finish_reasons=("stop",))]


# -- the request -----------------------------------------------------------------------------


async def recorded_request(mock_url: str, marker: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        entries = (await client.get(f"{mock_url}/_mock/requests")).json()
    [entry] = [e for e in entries if marker in orjson.dumps(e["body"]).decode()]
    return dict(entry)


def system_field(provider: str, body: dict[str, Any]) -> Any:
    if provider == "openai":
        return [m["content"] for m in body["messages"] if m["role"] == "system"]
    if provider == "anthropic":
        return [block["text"] for block in body["system"]]
    return [part["text"] for part in body["systemInstruction"]["parts"]]


def conversation(provider: str, body: dict[str, Any]) -> list[Any]:
    if provider == "openai":
        return [m for m in body["messages"] if m["role"] != "system"]
    if provider == "anthropic":
        return list(body["messages"])
    return list(body["contents"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_creator_prompt_reaches_the_provider_in_its_system_field(
    make_adapter: AdapterFactory, mock_provider_url: str, provider: str, stream: bool
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    adapter = make_adapter(provider)
    request = payload(f"hello {marker}", stream=stream)
    if stream:
        async with adapter.stream(request, headers={}) as chat_stream:
            await read_stream(chat_stream)
    else:
        await adapter.complete(request, headers={})
    entry = await recorded_request(mock_provider_url, marker)
    body = entry["body"]
    assert system_field(provider, body) == [SECRET]
    assert SECRET not in orjson.dumps(conversation(provider, body)).decode()
    headers = entry["headers"]
    if provider == "openai":
        assert headers["authorization"] == "Bearer mock-key"
    elif provider == "anthropic":
        assert entry["path"] == "/v1/messages"
        assert headers["x-api-key"] == "mock-key"
        assert headers["anthropic-version"] == "2023-06-01"
        assert body["max_tokens"] == 200
        assert body["temperature"] == 0.3
        assert body.get("stream", False) is stream
    else:
        action = "streamGenerateContent" if stream else "generateContent"
        assert entry["path"] == f"/v1beta/models/mock-model:{action}"
        assert entry["query"] == ("alt=sse" if stream else "")
        assert headers["x-goog-api-key"] == "mock-key"
        assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 200}


# -- errors ----------------------------------------------------------------------------------

ERRORS: list[tuple[int, type[ProviderError]]] = [
    (400, ProviderRejectedRequest),
    (401, ProviderMisconfigured),
    (403, ProviderMisconfigured),
    (404, ProviderMisconfigured),
    (429, ProviderUnavailable),
    (500, ProviderUnavailable),
    (503, ProviderUnavailable),
    (529, ProviderUnavailable),  # Anthropic's "overloaded"
]


def assert_not_quoted(error: ProviderError) -> None:
    """The mock's error bodies say "mock: injected error": never in our message."""
    for text in (str(error), error.message):
        assert "injected" not in text
        assert "mock" not in text


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", ERRORS, ids=[str(status) for status, _ in ERRORS])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_error_status_maps_to_its_class_and_is_never_quoted(
    make_adapter: AdapterFactory,
    provider: str,
    case: tuple[int, type[ProviderError]],
    stream: bool,
) -> None:
    status, expected = case
    adapter = make_adapter(provider)
    request = payload(f"fail [[mock status={status}]]", stream=stream)
    with pytest.raises(ProviderError) as caught:
        await call(adapter, request, stream=stream)
    assert type(caught.value) is expected
    assert caught.value.upstream_status == status
    assert_not_quoted(caught.value)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_broken_midway_is_unavailable_after_partial_chunks(
    make_adapter: AdapterFactory, provider: str
) -> None:
    adapter = make_adapter(provider)
    items: list[bytes | Usage] = []
    request = payload("break [[mock chunks=5 break_after=2]]", stream=True)
    with pytest.raises(ProviderUnavailable) as caught:
        await collect(adapter, request, items)
    raw, usages = split_items(items)
    assert streamed_text(raw)  # some content got through first
    assert b"[DONE]" not in raw
    assert usages == []  # not complete: no usage
    assert_not_quoted(caught.value)


@pytest.mark.parametrize("stall_after", [0, 2])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stalled_stream_times_out(
    make_adapter: AdapterFactory, provider: str, stall_after: int
) -> None:
    adapter = make_adapter(provider, sock_read=0.3)
    directive = f"[[mock chunks=5 stall_after={stall_after} stall_ms=5000]]"
    with pytest.raises(ProviderTimeout):
        await call(adapter, payload(directive, stream=True), stream=True)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unreachable_provider_is_unavailable(
    make_adapter: AdapterFactory, provider: str, stream: bool
) -> None:
    adapter = make_adapter(provider, url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable):
        await call(adapter, payload("hi", stream=stream), stream=stream)


# -- a provider that answers 200, then an error event ------------------------------------------

ANTHROPIC_OVERLOADED = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
    b'"message":"Overloaded. ECHOED-REQUEST-TEXT"}}\n\n'
)
GEMINI_ERROR = b'data: {"error":{"code":500,"message":"ECHOED-REQUEST-TEXT"}}\n\n'


class CannedStream:
    """An ASGI app answering every POST with a 200 event stream of fixed bytes."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture(scope="module")
def canned_anthropic() -> Iterator[str]:
    with serve(CannedStream(ANTHROPIC_OVERLOADED), health_path="/") as url:
        yield url


@pytest.fixture(scope="module")
def canned_gemini() -> Iterator[str]:
    with serve(CannedStream(GEMINI_ERROR), health_path="/") as url:
        yield url


@pytest.mark.parametrize("provider", ["anthropic", "google"])
async def test_an_error_event_before_any_content_fails_the_open_not_the_relay(
    make_adapter: AdapterFactory,
    canned_anthropic: str,
    canned_gemini: str,
    provider: str,
) -> None:
    """Anthropic signals overload as an SSE error event after a 200. The adapter reads up to
    the first client bytes before the stream counts as open, so the gateway sees the failure
    before answering the client (and can fall back, or answer 503)."""
    url = canned_anthropic if provider == "anthropic" else canned_gemini
    adapter = make_adapter(provider, url=url)
    opened = False
    with pytest.raises(ProviderUnavailable) as caught:
        async with adapter.stream(payload("hi", stream=True), headers={}):
            opened = True
    assert not opened
    assert "ECHOED" not in str(caught.value)
