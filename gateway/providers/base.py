"""What every provider adapter offers the gateway: one small Protocol.

An adapter speaks the OpenAI chat format to the gateway, whatever its provider speaks on the
wire. `complete` returns an OpenAI chat.completion body and its usage; `stream` opens a
`ChatStream`: OpenAI SSE bytes (`data: {chunk}\n\n` ... `data: [DONE]\n\n`), then the
answer's `Usage` as its last item, which says the answer completed (a stream that ends any
other way raises instead). Errors leave an adapter only as the classes in
`gateway.providers.errors`. What an adapter reads of its provider's answers is typed, in its
`*_wire` module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.providers.openai_wire import ChatCompletionRequest


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0  # every prompt token, cached or not
    output_tokens: int = 0
    finish_reasons: tuple[str, ...] = ()
    # Of input_tokens: read from the provider's prompt cache, and written to it (Anthropic).
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0


@dataclass(slots=True)
class Completion:
    """A finished non-streaming answer: the OpenAI-format body for the client, and usage.
    `data`: the body's JSON object when the adapter already parsed it (so the pipeline does
    not parse it again); None: not parsed here, or not a JSON object."""

    body: bytes
    usage: Usage
    data: dict[str, Any] | None = None


# Client-ready SSE bytes, then the `Usage` of the completed answer as the last item.
ChatStream = AsyncIterator[bytes | Usage]


class ChatProvider(Protocol):
    name: str

    async def complete(
        self, request: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> Completion: ...

    def stream(
        self, request: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> AbstractAsyncContextManager[ChatStream]: ...

    async def aclose(self) -> None: ...
