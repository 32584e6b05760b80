"""OpenAI and everything that speaks its chat API (vLLM, Ollama, Together, Groq, the mock).

Non-streaming answers are forwarded as the provider sent them, read once for their usage.
Streams are a byte passthrough: chunks go to the client as they arrive, and a tap keeps only
the tail of the stream to read `usage` from the last chunk and to see `[DONE]` at the end.
What is read is typed in `openai_wire`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import orjson

from common.sse import event_data, events_from_end
from gateway.providers.base import ChatStream, Completion, Usage
from gateway.providers.errors import ProviderTimeout, ProviderUnavailable
from gateway.providers.http_client import TIMEOUTS, HttpAdapter
from gateway.providers.openai_wire import ANSWER, ChatAnswer, ChatCompletionRequest, TokenCounts

_TAIL_BYTES = 4096
_DONE = b"data: [DONE]"


def finish_reasons_of(answer: ChatAnswer) -> tuple[str, ...]:
    return tuple(choice.finish_reason for choice in answer.choices or () if choice.finish_reason)


def _usage(counts: TokenCounts, finish_reasons: tuple[str, ...]) -> Usage:
    details = counts.prompt_tokens_details
    return Usage(
        input_tokens=counts.prompt_tokens or 0,
        output_tokens=counts.completion_tokens or 0,
        finish_reasons=finish_reasons,
        # Part of prompt_tokens: what the provider's prompt cache served.
        cached_input_tokens=(details.cached_tokens or 0) if details is not None else 0,
    )


def usage_of_answer(body: bytes) -> Usage:
    """The usage of a whole chat.completion body; ProviderUnavailable if it is unreadable."""
    try:
        answer = ANSWER.decode(body)
    except msgspec.DecodeError:
        raise ProviderUnavailable("The model provider sent an unreadable answer.") from None
    if answer.usage is None:
        return Usage(finish_reasons=finish_reasons_of(answer))
    return _usage(answer.usage, finish_reasons_of(answer))


def completion_of(body: bytes) -> Completion:
    """A whole chat.completion body, parsed once: its JSON object (for the leak guard and the
    edge) and the usage read from it, as `usage_of_answer` would have read it from the bytes
    (the same structs, the same errors); ProviderUnavailable if it is unreadable."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        # Not an object to orjson: msgspec's reading of the bytes decides, as before.
        return completion_of(body)
    try:
        answer = msgspec.convert(data, ChatAnswer)
    except msgspec.ValidationError:
        raise ProviderUnavailable("The model provider sent an unreadable answer.") from None
    usage = (
        Usage(finish_reasons=finish_reasons_of(answer))
        if answer.usage is None
        else _usage(answer.usage, finish_reasons_of(answer))
    )
    return Completion(body=body, usage=usage, data=data)


def usage_from_sse_tail(tail: bytes) -> Usage:
    """The usage of the last SSE event that carries one (OpenAI puts it in the final chunk),
    and the finish reasons of the last chunk that has them."""
    counts: TokenCounts | None = None
    finish_reasons: tuple[str, ...] = ()
    # The tail's first event is cut (its start fell off): it fails to parse, and is skipped.
    for raw_event in events_from_end(tail):
        event = event_data(raw_event)
        if event is None or not event.startswith(b"{"):
            continue
        # `find`, not `in`: `bytes in bytes` first tries the needle as an int (a TypeError).
        wants_usage = counts is None and event.find(b'"usage"') >= 0
        wants_finish = not finish_reasons and event.find(b'"finish_reason":"') >= 0
        if not (wants_usage or wants_finish):
            continue
        try:
            chunk = ANSWER.decode(event)
        except msgspec.DecodeError:
            continue  # the tail cut this event; an earlier one may be whole
        if wants_usage and chunk.usage is not None:
            counts = chunk.usage
        if wants_finish:
            finish_reasons = finish_reasons_of(chunk)
        if counts is not None and finish_reasons:
            break
    return (
        Usage(finish_reasons=finish_reasons) if counts is None else _usage(counts, finish_reasons)
    )


class SseTail:
    """The streaming tap: keeps the last few KB of a relayed SSE stream, and at the end says
    whether it completed (`[DONE]`) and what usage its last chunk reported."""

    __slots__ = ("tail",)

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        self.tail = (self.tail + chunk)[-_TAIL_BYTES:]

    @property
    def completed(self) -> bool:
        # Where [DONE] is (the stream's last event): a search of its last bytes first.
        tail = self.tail
        return tail.find(_DONE, len(tail) - 32) >= 0 or tail.find(_DONE) >= 0

    def usage(self) -> Usage:
        return usage_from_sse_tail(self.tail)


class OpenAICompatibleProvider(HttpAdapter):
    def __init__(
        self, name: str, base_url: str, api_key: str, session: aiohttp.ClientSession
    ) -> None:
        super().__init__(name, session, {"authorization": f"Bearer {api_key}"})
        self._url = base_url.rstrip("/") + "/chat/completions"

    async def complete(
        self, request: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> Completion:
        body = await self._post(self._url, orjson.dumps(request), headers)
        return completion_of(body)

    @contextlib.asynccontextmanager
    async def stream(
        self, request: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> AsyncIterator[ChatStream]:
        response = await self._open_stream(self._url, orjson.dumps(request), headers)
        try:
            yield _relay(response)
        finally:
            response.close()


async def _relay(response: aiohttp.ClientResponse) -> ChatStream:
    tap = SseTail()
    try:
        async for chunk in response.content.iter_any():
            tap.feed(chunk)
            yield chunk
    except TIMEOUTS:
        raise ProviderTimeout("The model provider stopped sending.") from None
    except aiohttp.ClientError:
        raise ProviderUnavailable("The model provider broke the stream.") from None
    if not tap.completed:
        raise ProviderUnavailable("The model provider ended the stream early.")
    yield tap.usage()
