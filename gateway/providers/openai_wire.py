"""The OpenAI chat answer as the gateway reads it: only the fields metering needs.

The answer itself is relayed as the provider sent it (OpenAI speaks our format); these
structs are what is decoded from it, once: a whole `chat.completion` (`ChatAnswer`) and each
stream chunk the tail reader looks into (`ChatChunk`: the same fields). Every other field is
skipped by the decoder, never built. A field of the wrong type makes the answer unreadable.
"""

from __future__ import annotations

import msgspec


class Wire(msgspec.Struct, gc=False):
    """Decoded provider JSON, never part of a reference cycle (so the collector skips it)."""


class TokenCounts(Wire):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Choice(Wire):
    finish_reason: str | None = None


class ChatAnswer(Wire):
    """A `chat.completion` body, or one `chat.completion.chunk` of a stream."""

    choices: list[Choice] | None = None
    usage: TokenCounts | None = None  # `null` on the chunks before the last


ChatChunk = ChatAnswer

ANSWER = msgspec.json.Decoder(ChatAnswer)
