"""OpenAI's streamed chat completion as it arrives on the wire (`stream_options.include_usage`),
for the tests and the benchmarks that feed it to the gateway's stream code."""

from __future__ import annotations

from typing import Any

import orjson

CHUNK_BASE: dict[str, Any] = {
    "id": "chatcmpl-9xQm2bS8c1Lw0ZkE4rT7yV3uN6pA5",
    "object": "chat.completion.chunk",
    "created": 1735689600,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_0ba0d124f1",
    "usage": None,
}


def sse_event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return b"data: " + orjson.dumps({**CHUNK_BASE, "choices": choices, **extra}) + b"\n\n"


def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def openai_stream_events(deltas: list[str], usage: dict[str, int]) -> list[bytes]:
    """The events of an answer made of `deltas`, in order: the role, one per delta, the
    finish, the usage, `[DONE]`."""
    events = [sse_event([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [sse_event([choice({"content": delta})]) for delta in deltas]
    events.append(sse_event([choice({}, "stop")]))
    events.append(sse_event([], usage=usage))
    events.append(b"data: [DONE]\n\n")
    return events


def socket_reads(deltas: list[str], usage: dict[str, int]) -> list[bytes]:
    """The same answer as one socket read per event, the usage event split across two."""
    *answer, last, done = openai_stream_events(deltas, usage)
    return [*answer, last[:40], last[40:], done]
