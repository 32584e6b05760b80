"""The interface each provider wire format implements."""

from __future__ import annotations

from typing import Any, Protocol

from mock_provider.reply import Answer, Prompt
from mock_provider.streaming import StreamPlan


class Dialect(Protocol):
    """One provider's chat wire format."""

    @property
    def id_prefix(self) -> str:
        """Prefix of the answer ids (``chatcmpl-``, ``msg_``...)."""
        ...

    def parse(self, body: dict[str, Any]) -> Prompt:
        """The request's texts; raise BadRequest for a body the provider would reject."""
        ...

    def error(self, status: int, message: str) -> bytes:
        """An error body in the provider's shape."""
        ...

    def response(self, answer: Answer, body: dict[str, Any]) -> bytes:
        """The non-streaming answer."""
        ...

    def stream(self, answer: Answer, pieces: list[str], body: dict[str, Any]) -> StreamPlan:
        """The streamed answer, one content event per piece."""
        ...
