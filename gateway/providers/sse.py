"""Server-sent events in and OpenAI chat shapes out: what the translating adapters share.

In: `SseParser`, an incremental parser of a provider's `text/event-stream`. Network reads cut
events (and lines, and UTF-8 sequences) anywhere; the parser keeps the unfinished line and
hands out only whole events. Lines end at `\\n` (a trailing `\\r` is dropped); nothing else
ends a line: U+2028, U+0085 and friends may sit inside JSON strings, so `str.splitlines`
must never touch a stream.

Out: `ChunkWriter` encodes OpenAI `chat.completion.chunk` SSE events (the client-ready bytes
`ChatStream.chunks` yields) and `completion_body` an OpenAI `chat.completion` body, so an
Anthropic or Gemini answer reaches the client exactly as an OpenAI one would.

Between the two: `post_json`, `open_stream` and `start_translated`, the HTTP plumbing, with
every transport error translated into `gateway.providers.errors` at this edge; and a few
readers of the OpenAI request (`content_parts`, `data_url`, `stop_sequences`...) both
request translators use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, NamedTuple, Protocol

import aiohttp
import orjson

from gateway.providers.base import ChatStream, Usage
from gateway.providers.errors import (
    ProviderRejectedRequest,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)

DONE = b"data: [DONE]\n\n"
# One SSE line longer than this is not a model's answer: the stream is refused, not buffered.
MAX_LINE_BYTES = 16 * 1024 * 1024


class SseEvent(NamedTuple):
    event: str  # the `event:` field, "message" when absent
    data: bytes  # the `data:` lines joined by "\n"


class SseError(ValueError):
    """The byte stream is not an event stream we can read."""


class SseParser:
    """Feed it network reads; get back the events they complete, in order (WHATWG rules:
    `field: value` lines, a blank line dispatches, `:` starts a comment, an event without
    data is not dispatched). `id` and `retry` are ignored: no provider resumes a stream."""

    __slots__ = ("_buffer", "_data", "_event", "_scanned")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no "\n"
        self._event = ""
        self._data: list[bytes] | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer
        buffer += chunk
        events: list[SseEvent] = []
        start = 0
        while (end := buffer.find(b"\n", max(start, self._scanned))) >= 0:
            self._line(bytes(buffer[start:end]), events)
            start = end + 1
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        if self._scanned > MAX_LINE_BYTES:
            raise SseError("an event stream line exceeds the size limit")
        return events

    def flush(self) -> list[SseEvent]:
        """At the end of the stream: the last event, if its data lines all arrived whole but
        the closing blank line did not. A line cut short by the end of stream is dropped."""
        events: list[SseEvent] = []
        self._buffer.clear()
        self._scanned = 0
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SseEvent]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data is not None:
                events.append(SseEvent(self._event or "message", b"\n".join(self._data)))
            self._event = ""
            self._data = None
            return
        if line[0] == 0x3A:  # ":" a comment (keep-alive)
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


# -- OpenAI input -----------------------------------------------------------------------------


def content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of OpenAI content parts (a string is one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [part for part in content if isinstance(part, dict)]
    return []


def texts_of(content: Any, provider: str) -> list[str]:
    """The texts of a message that may hold only text (system, developer, tool)."""
    texts = []
    for part in content_parts(content):
        if part.get("type") != "text":
            raise unsupported(provider, f"{part.get('type')} content in this message")
        texts.append(str(part.get("text", "")))
    return texts


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64" or not media_type:
        return None
    return media_type, data


def stop_sequences(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [item for item in stop if isinstance(item, str)]
    return []


def tool_arguments(call: dict[str, Any], provider: str) -> dict[str, Any]:
    """The parsed arguments of an OpenAI tool call (a JSON object encoded as a string)."""
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise unsupported(provider, "tool call arguments that are not JSON") from None
    if not isinstance(arguments, dict):
        raise unsupported(provider, "tool call arguments that are not a JSON object")
    return arguments


def unsupported(provider: str, what: str) -> ProviderRejectedRequest:
    return ProviderRejectedRequest(f"The {provider} provider does not accept {what}.")


# -- OpenAI output ----------------------------------------------------------------------------


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def tool_call_json(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion_body(
    *,
    id: str,
    created: int,
    model: str,
    text: str,
    tool_calls: list[dict[str, Any]],
    finish_reason: str,
    usage: Usage,
) -> bytes:
    """An OpenAI `chat.completion` body with one choice."""
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI answers `null` content when the model only called tools.
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return orjson.dumps(
        {
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage_json(usage),
        }
    )


class ChunkWriter:
    """OpenAI `chat.completion.chunk` events for one streamed answer, as SSE bytes.

    The shape (and order) a client sees is OpenAI's: a first chunk with the assistant role,
    content (or tool call) deltas, a chunk with an empty delta and the finish reason, a usage
    chunk with no choices, then `[DONE]`."""

    __slots__ = ("_head",)

    def __init__(self, *, id: str, created: int, model: str) -> None:
        self._head = (
            b'data: {"id":'
            + orjson.dumps(id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"choices":'
        )

    def _choice(self, delta: bytes, finish_reason: bytes = b"null") -> bytes:
        return (
            self._head
            + b'[{"index":0,"delta":'
            + delta
            + b',"logprobs":null,"finish_reason":'
            + finish_reason
            + b"}]}\n\n"
        )

    def role(self) -> bytes:
        return self._choice(b'{"role":"assistant","content":""}')

    def text(self, text: str) -> bytes:
        return self._choice(b'{"content":' + orjson.dumps(text) + b"}")

    def tool_call_start(self, index: int, call_id: str, name: str) -> bytes:
        call = {"index": index, **tool_call_json(call_id, name, "")}
        return self._choice(b'{"tool_calls":' + orjson.dumps([call]) + b"}")

    def tool_call_arguments(self, index: int, arguments: str) -> bytes:
        call = {"index": index, "function": {"arguments": arguments}}
        return self._choice(b'{"tool_calls":' + orjson.dumps([call]) + b"}")

    def finish(self, finish_reason: str) -> bytes:
        return self._choice(b"{}", orjson.dumps(finish_reason))

    def usage(self, usage: Usage) -> bytes:
        return self._head + b'[],"usage":' + orjson.dumps(usage_json(usage)) + b"}\n\n"


# -- HTTP plumbing ----------------------------------------------------------------------------

_TIMEOUTS = (asyncio.TimeoutError, aiohttp.ServerTimeoutError)
_DRAIN_S = 1.0


async def post_json(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], provider: str
) -> dict[str, Any]:
    """POST and return the 2xx JSON answer; any failure leaves as a ProviderError (the
    provider's error body is read, to keep the connection, and never quoted)."""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            raw = await response.read()
            status = response.status
    except _TIMEOUTS:
        raise ProviderTimeout("The model provider timed out.") from None
    except aiohttp.ClientError:
        raise ProviderUnavailable("The model provider could not be reached.") from None
    if status >= 300:
        raise error_for_status(status, provider)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProviderUnavailable("The model provider sent an unreadable answer.") from None
    if not isinstance(data, dict):
        raise ProviderUnavailable("The model provider sent an unreadable answer.")
    return data


async def open_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], provider: str
) -> aiohttp.ClientResponse:
    """POST and return the open 2xx response, its body not yet read."""
    try:
        response = await session.post(url, data=body, headers=headers)
    except _TIMEOUTS:
        raise ProviderTimeout("The model provider timed out.") from None
    except aiohttp.ClientError:
        raise ProviderUnavailable("The model provider could not be reached.") from None
    if response.status >= 300:
        response.close()
        raise error_for_status(response.status, provider)
    return response


class StreamTranslator(Protocol):
    """One provider's stream events in, OpenAI chunk bytes out."""

    usage: Usage

    @property
    def done(self) -> bool:
        """The provider said the answer is complete: nothing after it needs reading."""
        ...

    def feed(self, events: list[SseEvent]) -> bytes:
        """The client bytes these events make (often none); raises a ProviderError for an
        error event or an unreadable one."""
        ...

    def end(self) -> bytes:
        """The closing bytes (finish, usage, `[DONE]`) once the stream ended; raises
        ProviderUnavailable if it ended before the answer was complete."""
        ...


async def start_translated(
    response: aiohttp.ClientResponse, chat_stream: ChatStream, translator: StreamTranslator
) -> AsyncIterator[bytes]:
    """Read the stream up to its first client bytes, then return the iterator of them all.

    Waiting for them before the stream counts as open means a provider that answers 200 and
    then an error event (Anthropic does, when overloaded) fails like any provider error:
    before the gateway answered the client, so the call can still fall back or answer 503."""
    chunks = relay_translated(response, chat_stream, translator)
    first = await anext(chunks)
    return _prepend(first, chunks)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def relay_translated(
    response: aiohttp.ClientResponse, chat_stream: ChatStream, translator: StreamTranslator
) -> AsyncIterator[bytes]:
    """The client bytes of a translated stream, one piece per network read that made any.
    `chat_stream.usage` and `.completed` are set once the answer completed."""
    parser = SseParser()
    out = b""
    try:
        async for chunk in response.content.iter_any():
            out = translator.feed(parser.feed(chunk))
            if translator.done:
                break
            if out:
                yield out
        else:
            out = translator.feed(parser.flush())
    except _TIMEOUTS:
        raise ProviderTimeout("The model provider stopped sending.") from None
    except aiohttp.ClientError:
        raise ProviderUnavailable("The model provider broke the stream.") from None
    except SseError:
        raise ProviderUnavailable("The model provider sent an unreadable stream.") from None
    tail = out + translator.end()
    chat_stream.usage = translator.usage
    chat_stream.completed = True
    yield tail
    if translator.done:
        await _drain(response)


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read the little that follows an end event (the body's last bytes), so the connection
    goes back to the pool instead of being dropped. Bounded: the answer is already out."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(_DRAIN_S):
            while await response.content.readany():
                pass


async def empty_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
