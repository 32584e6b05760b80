"""Anthropic's Messages API answers as the adapter reads them: only the fields it translates.

`Message` is a whole answer; `StreamEvent` is any one event of a stream, one flat struct for
all event types (a new type Anthropic adds is read, and ignored, instead of refused). Every
other field is skipped by the decoder, never built. A field of the wrong type makes the
answer unreadable.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Wire(msgspec.Struct, gc=False):
    """Decoded provider JSON, never part of a reference cycle (so the collector skips it)."""


class TokenCounts(Wire):
    """`usage`. A stream reports input at `message_start` and the cumulative output at
    `message_delta`: a count absent here is None, and keeps what was read before."""

    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens: int | None = None


class ContentBlock(Wire):
    """A `text` or `tool_use` block (other types are skipped by their readers); in a
    stream, `content_block_start`'s."""

    type: str = ""
    text: str = ""
    id: str = ""
    name: str = ""
    input: Any = None  # a tool call's arguments, a JSON object


class Message(Wire):
    """A whole answer (and, in a stream, `message_start`'s `message`)."""

    id: str = ""
    model: str = ""
    content: list[ContentBlock] = []
    stop_reason: str | None = None
    usage: TokenCounts | None = None


class Delta(Wire):
    """`content_block_delta`'s delta (`text_delta`, `input_json_delta`; thinking deltas
    are skipped) and `message_delta`'s (`stop_reason`)."""

    type: str = ""
    text: str = ""
    partial_json: str = ""
    stop_reason: str | None = None


class StreamEvent(Wire):
    type: str = ""
    index: int = -1
    message: Message | None = None
    content_block: ContentBlock | None = None  # a tool call's input comes in deltas
    delta: Delta | None = None
    usage: TokenCounts | None = None


MESSAGE = msgspec.json.Decoder(Message)
STREAM_EVENT = msgspec.json.Decoder(StreamEvent)
