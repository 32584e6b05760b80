"""The adapters' reads of provider answers (gateway/providers/*_wire.py): an Anthropic and a
Gemini stream translated into OpenAI chunks, the usage read from an OpenAI stream's tail, and
whole Anthropic, Gemini and OpenAI answers decoded. No network: the events are parsed once up
front, so each round is the adapter's own work per answer.
"""

from __future__ import annotations

from typing import Any

import orjson

from common.sse import SseEvent, events_of
from gateway.providers import anthropic, google, openai_compatible
from gateway.providers.base import Usage

WORDS = 20


def _anthropic_event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


ANTHROPIC_STREAM: list[SseEvent] = events_of(
    b"".join(
        [
            _anthropic_event("message_start", {"message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
                "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": None,
                "stop_sequence": None, "usage": {"input_tokens": 412, "output_tokens": 1,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
            _anthropic_event("content_block_start", {"index": 0,
                "content_block": {"type": "text", "text": ""}}),
            _anthropic_event("ping", {}),
            *(_anthropic_event("content_block_delta", {"index": 0,
                "delta": {"type": "text_delta", "text": f" word{i}"}}) for i in range(WORDS)),
            _anthropic_event("content_block_stop", {"index": 0}),
            _anthropic_event("message_delta", {"delta": {"stop_reason": "end_turn",
                "stop_sequence": None}, "usage": {"output_tokens": WORDS}}),
            _anthropic_event("message_stop", {}),
        ]
    )
)  # fmt: skip

GEMINI_STREAM: list[SseEvent] = events_of(
    b"".join(
        b"data: "
        + orjson.dumps(
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": f" word{i}"}], "role": "model"},
                        **({"finishReason": "STOP"} if i == WORDS - 1 else {}),
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": 412,
                    "candidatesTokenCount": i + 1,
                    "totalTokenCount": 413 + i,
                },
                "modelVersion": "gemini-2.5-flash",
                "responseId": "mAitaLmkHPPlz7IPvtfUqQ4",
            }
        )
        + b"\r\n\r\n"
        for i in range(WORDS)
    )
)

ANSWER_TEXT = "A careful answer of a few sentences. " * 12
ANTHROPIC_ANSWER = orjson.dumps(
    {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": ANSWER_TEXT}],
        "model": "claude-sonnet-4-5-20250929",
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 412,
            "output_tokens": 96,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }
)
GEMINI_ANSWER = orjson.dumps(
    {
        "candidates": [
            {
                "content": {"parts": [{"text": ANSWER_TEXT}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 412,
            "candidatesTokenCount": 96,
            "totalTokenCount": 508,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mAitaLmkHPPlz7IPvtfUqQ4",
    }
)
OPENAI_ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-9xQm2bS8c1Lw0ZkE4rT7yV3uN6pA5",
        "object": "chat.completion",
        "created": 1735689600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": ANSWER_TEXT,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 412,
            "completion_tokens": 96,
            "total_tokens": 508,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
    }
)


def _openai_tail() -> bytes:
    """The last 4 KB of a 20-chunk OpenAI stream with `include_usage` (what `SseTail` keeps)."""
    base = {"id": "chatcmpl-9xQm2bS8c1Lw0ZkE4rT7yV3uN6pA5", "object": "chat.completion.chunk",
            "created": 1735689600, "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_0ba0d124f1", "usage": None}  # fmt: skip

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    pieces = [event([choice({"content": f" word{i}"})]) for i in range(WORDS)]
    pieces.append(event([choice({}, "stop")]))
    usage = {"prompt_tokens": 412, "completion_tokens": WORDS, "total_tokens": 412 + WORDS}
    pieces += [event([], usage=usage), b"data: [DONE]\n\n"]
    return b"".join(pieces)[-4096:]


OPENAI_TAIL = _openai_tail()


def translate_anthropic() -> bytes:
    translator = anthropic.AnthropicStream("claude")
    return translator.feed(ANTHROPIC_STREAM) + translator.end()


def translate_gemini() -> bytes:
    translator = google.GeminiStream("gemini")
    return translator.feed(GEMINI_STREAM) + translator.end()


def _streamed_text(raw: bytes) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in events_of(raw)
        if event.data != b"[DONE]"
        for choice in orjson.loads(event.data)["choices"]
    )


def test_anthropic_stream_translation(benchmark: Any) -> None:
    raw = benchmark(translate_anthropic)
    assert _streamed_text(raw) == "".join(f" word{i}" for i in range(WORDS))
    assert raw.endswith(b"data: [DONE]\n\n")


def test_gemini_stream_translation(benchmark: Any) -> None:
    raw = benchmark(translate_gemini)
    assert _streamed_text(raw) == "".join(f" word{i}" for i in range(WORDS))


def test_openai_stream_tail_usage(benchmark: Any) -> None:
    usage = benchmark(openai_compatible.usage_from_sse_tail, OPENAI_TAIL)
    assert usage == Usage(412, WORDS, ("stop",))


def test_anthropic_answer_decode(benchmark: Any) -> None:
    completion = benchmark(anthropic.to_completion, ANTHROPIC_ANSWER, "claude")
    assert orjson.loads(completion.body)["choices"][0]["message"]["content"] == ANSWER_TEXT
    assert completion.usage == Usage(412, 96, ("stop",))


def test_gemini_answer_decode(benchmark: Any) -> None:
    completion = benchmark(google.to_completion, GEMINI_ANSWER, "gemini")
    assert orjson.loads(completion.body)["choices"][0]["message"]["content"] == ANSWER_TEXT
    assert completion.usage == Usage(412, 96, ("stop",))


def test_openai_answer_usage(benchmark: Any) -> None:
    usage = benchmark(openai_compatible.usage_of_answer, OPENAI_ANSWER)
    assert usage == Usage(412, 96, ("stop",))


# -- the request: the OpenAI chat request the gateway built, in each provider's format ----------

REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": "You are a careful support assistant for Acme. " * 20},
        {"role": "user", "content": "My order #4411 has not arrived. " * 4},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "order_status", "arguments": '{"order": 4411}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
        {"role": "user", "content": [{"type": "text", "text": "12 rue de la Paix, Paris."}]},
    ],
    "tools": [{"type": "function", "function": {"name": "order_status", "description": "d",
               "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}}}}],
    "tool_choice": "auto",
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 512,
    "stop": ["\n\n"],
    "user": "end-user-17",
    "stream": True,
    "stream_options": {"include_usage": True},
}  # fmt: skip


def test_anthropic_request_translation(benchmark: Any) -> None:
    request = benchmark(anthropic.to_messages_request, REQUEST, stream=True)
    assert [turn["role"] for turn in request["messages"]] == ["user", "assistant", "user"]
    assert request["tool_choice"] == {"type": "auto"}


def test_gemini_request_translation(benchmark: Any) -> None:
    request = benchmark(google.to_generate_request, REQUEST)
    assert [turn["role"] for turn in request["contents"]] == ["user", "model", "user"]
    assert request["generationConfig"]["maxOutputTokens"] == 512
