"""The edge of a call: how its answer reaches the client, in the dialect the client speaks.

The pipeline (gateway/proxy.py) does everything a call is (admission, the hidden prompt,
knowledge, the provider, the leak guard, the commit) and hands the answer, already guarded
and always in OpenAI's chat format (what the providers' adapters speak), to an `Edge`. The
edge only translates and writes it: OpenAI's chat completions (gateway/openai_edge.py), an
MCP tool result (gateway/mcp/edge.py). Errors raised before the answer began are the
endpoint's to write, in its own dialect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from common.asgi import Receive
from common.errors import ApiError
from gateway.call_record import hot_record
from gateway.leak_guard import completion_object
from gateway.providers.errors import ProviderError

if TYPE_CHECKING:
    from gateway.proxy import Call

# Why a stream that answered 200 ends early: the provider broke off (ProviderError), or the
# gateway cut it at shutdown (gateway/drain.py's ShuttingDown). Either has a code and message.
StreamBreak: TypeAlias = ProviderError | ApiError


# The response headers of every dialect's answers (each adds the admission's).
SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)
JSON_HEADERS = ((b"content-type", b"application/json"),)


@hot_record
class Answer:
    """A whole chat.completion: its bytes, and their JSON object parsed once, for the leak
    guard and then the edge (`data` None: not a JSON object, relayed as it came)."""

    body: bytes
    data: dict[str, Any] | None

    @classmethod
    def of(cls, body: bytes) -> Answer:
        return cls(body, completion_object(body))


class StreamSink(Protocol):
    """A stream whose response has started. `withheld`: the leak guard has withheld the
    answer (all that follows is the notice and the stream's end)."""

    async def send(self, sse: bytes, *, withheld: bool) -> None:
        """OpenAI chat.completion.chunk SSE bytes, as the guard released them."""

    async def close(self, broken: StreamBreak | None, *, withheld: bool) -> None:
        """The end: `broken` when the stream broke off after the response started."""


class Edge(Protocol):
    @property
    def receive(self) -> Receive:
        """The client's ASGI receive: the pipeline watches it for a disconnect."""

    async def answer(self, call: Call, completion: Answer, *, billed: bool) -> None:
        """A whole chat.completion (the guard's verdict already applied). The edge may
        change `completion.data` in place: nothing reads it after."""

    async def open_stream(self, call: Call) -> StreamSink:
        """Start the response of a streamed answer (the provider's stream has opened)."""
