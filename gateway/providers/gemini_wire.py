"""Gemini's GenerateContentResponse as the adapter reads it: only the fields it translates.

One struct for both a whole answer and each event of a stream (every SSE event is a
GenerateContentResponse). Every other field is skipped by the decoder, never built. A field
of the wrong type makes the answer unreadable.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Wire(msgspec.Struct, gc=False, rename="camel"):
    """Decoded provider JSON (camelCase names), never part of a reference cycle (so the
    collector skips it)."""


class FunctionCall(Wire):
    id: str | None = None
    name: str = ""
    args: Any = None  # a JSON object


class Part(Wire):
    text: str | None = None
    thought: bool = False  # a thought summary: never relayed
    function_call: FunctionCall | None = None
    thought_signature: str | None = None


class Content(Wire):
    parts: list[Part] = []


class Candidate(Wire):
    content: Content | None = None
    finish_reason: str | None = None


class PromptFeedback(Wire):
    block_reason: str | None = None


class TokenCounts(Wire):
    """`usageMetadata`, cumulative on every event of a stream."""

    prompt_token_count: int | None = None
    tool_use_prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    thoughts_token_count: int | None = None
    cached_content_token_count: int | None = None  # of prompt_token_count, from the cache


class GenerateContentResponse(Wire):
    candidates: list[Candidate] | None = None
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: TokenCounts | None = None
    model_version: str | None = None
    response_id: str | None = None
    # An error event in a stream (after a 200): its presence is all we read; never quoted.
    error: Any = msgspec.UNSET


RESPONSE = msgspec.json.Decoder(GenerateContentResponse)
