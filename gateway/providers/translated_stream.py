"""The relay of a translated stream: a provider's SSE events in (read by `common.sse`), a
`StreamTranslator` turning them into OpenAI chunk bytes, the answer's usage as the last
item, every transport error translated into `gateway.providers.errors` at this edge."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import aiohttp

from common.sse import SseError, SseEvent, SseParser
from gateway.providers.base import ChatStream, Usage
from gateway.providers.errors import ProviderTimeout, ProviderUnavailable
from gateway.providers.http_client import TIMEOUTS

_DRAIN_S = 1.0


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
    response: aiohttp.ClientResponse, translator: StreamTranslator
) -> ChatStream:
    """Read the stream up to its first client bytes, then return the iterator of them all.

    Waiting for them before the stream counts as open means a provider that answers 200 and
    then an error event (Anthropic does, when overloaded) fails like any provider error:
    before the gateway answered the client, so the call can still fall back or answer 503."""
    chunks = relay_translated(response, translator)
    first = await anext(chunks)
    return _prepend(first, chunks)


async def _prepend(first: bytes | Usage, rest: ChatStream) -> ChatStream:
    yield first
    async for chunk in rest:
        yield chunk


async def relay_translated(
    response: aiohttp.ClientResponse, translator: StreamTranslator
) -> ChatStream:
    """The client bytes of a translated stream, one piece per network read that made any,
    then the answer's usage once it completed."""
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
    except TIMEOUTS:
        raise ProviderTimeout("The model provider stopped sending.") from None
    except aiohttp.ClientError:
        raise ProviderUnavailable("The model provider broke the stream.") from None
    except SseError:
        raise ProviderUnavailable("The model provider sent an unreadable stream.") from None
    yield out + translator.end()
    yield translator.usage
    if translator.done:
        await _drain(response)


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read the little that follows an end event (the body's last bytes), so the connection
    goes back to the pool instead of being dropped. Bounded: the answer is already out."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(_DRAIN_S):
            while await response.content.readany():
                pass
