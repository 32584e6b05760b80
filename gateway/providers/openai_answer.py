"""OpenAI chat answers written by the translating adapters: `completion_body` an OpenAI
`chat.completion` body, `ChunkWriter` the `chat.completion.chunk` SSE events (the
client-ready bytes a stream yields), so an Anthropic or Gemini answer reaches the client
exactly as an OpenAI one would."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.base import Usage


def usage_json(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_input_tokens or usage.cache_write_input_tokens:
        # OpenAI's field for cache reads; cache writes under OpenRouter's name. Both are part
        # of prompt_tokens.
        details = {"cached_tokens": usage.cached_input_tokens}
        if usage.cache_write_input_tokens:
            details["cache_write_tokens"] = usage.cache_write_input_tokens
        out["prompt_tokens_details"] = details
    return out


def tool_call_json(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion_body(
    *,
    id: str,
    created: int,
    model: str,
    text: str,
    tool_calls: list[dict[str, Any]],
    finish_reason: str,
    usage: Usage,
) -> bytes:
    """An OpenAI `chat.completion` body with one choice."""
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI answers `null` content when the model only called tools.
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return orjson.dumps(
        {
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage_json(usage),
        }
    )


class ChunkWriter:
    """OpenAI `chat.completion.chunk` events for one streamed answer, as SSE bytes.

    The shape (and order) a client sees is OpenAI's: a first chunk with the assistant role,
    content (or tool call) deltas, a chunk with an empty delta and the finish reason, a usage
    chunk with no choices, then `[DONE]`."""

    __slots__ = ("_head",)

    def __init__(self, *, id: str, created: int, model: str) -> None:
        self._head = (
            b'data: {"id":'
            + orjson.dumps(id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"choices":'
        )

    def _choice(self, delta: bytes, finish_reason: bytes = b"null") -> bytes:
        return (
            self._head
            + b'[{"index":0,"delta":'
            + delta
            + b',"logprobs":null,"finish_reason":'
            + finish_reason
            + b"}]}\n\n"
        )

    def role(self) -> bytes:
        return self._choice(b'{"role":"assistant","content":""}')

    def text(self, text: str) -> bytes:
        return self._choice(b'{"content":' + orjson.dumps(text) + b"}")

    def tool_call_start(self, index: int, call_id: str, name: str) -> bytes:
        call = {"index": index, **tool_call_json(call_id, name, "")}
        return self._choice(b'{"tool_calls":' + orjson.dumps([call]) + b"}")

    def tool_call_arguments(self, index: int, arguments: str) -> bytes:
        call = {"index": index, "function": {"arguments": arguments}}
        return self._choice(b'{"tool_calls":' + orjson.dumps([call]) + b"}")

    def finish(self, finish_reason: str) -> bytes:
        return self._choice(b"{}", orjson.dumps(finish_reason))

    def usage(self, usage: Usage) -> bytes:
        return self._head + b'[],"usage":' + orjson.dumps(usage_json(usage)) + b"}\n\n"
