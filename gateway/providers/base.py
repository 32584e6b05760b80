"""What every provider adapter offers the gateway: one small Protocol.

An adapter speaks the OpenAI chat format to the gateway, whatever its provider speaks on the
wire. `complete` returns an OpenAI chat.completion body; `stream` yields OpenAI SSE bytes
(`data: {chunk}\n\n` ... `data: [DONE]\n\n`). Errors leave an adapter only as the classes in
`gateway.providers.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reasons: tuple[str, ...] = ()


@dataclass(slots=True)
class Completion:
    """A finished non-streaming answer: the OpenAI-format body for the client, and usage."""

    body: bytes
    usage: Usage


@dataclass(slots=True)
class ChatStream:
    """An open stream: iterate `chunks` for client-ready SSE bytes; `usage` and `completed`
    are final once the iteration ends."""

    chunks: AsyncIterator[bytes]
    usage: Usage = field(default_factory=Usage)
    completed: bool = False


class ChatProvider(Protocol):
    name: str

    async def complete(self, payload: dict[str, Any], *, headers: dict[str, str]) -> Completion: ...

    def stream(
        self, payload: dict[str, Any], *, headers: dict[str, str]
    ) -> AbstractAsyncContextManager[ChatStream]: ...

    async def aclose(self) -> None: ...
