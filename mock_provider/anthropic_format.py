"""Anthropic Messages API: request parsing, message bodies and the SSE event sequence."""

from __future__ import annotations

from typing import Any

import orjson

from common.sse import encode_event
from mock_provider.asgi import SSE_HEADERS
from mock_provider.reply import Answer, BadRequest, Prompt, join_texts, parsed_arguments
from mock_provider.streaming import StreamPlan

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return encode_event(orjson.dumps(payload), kind)


_BLOCK_START = _event(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
_PING = _event("ping", {"type": "ping"})
_BLOCK_STOP = _event("content_block_stop", {"type": "content_block_stop", "index": 0})
_MESSAGE_STOP = _event("message_stop", {"type": "message_stop"})


def error_body(status: int, message: str) -> bytes:
    """``{"type": "error", "error": {"type", "message"}}`` as Anthropic sends it."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


class AnthropicMessages:
    """``POST /v1/messages``."""

    id_prefix = "msg_mock"

    def parse(self, body: dict[str, Any]) -> Prompt:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise BadRequest("messages: Field required")
        prompt = Prompt()
        system = body.get("system")
        if system is not None:
            prompt.system.append(join_texts(system, prompt))
            prompt.prefixes = _marked_prefixes(system)
        for message in messages:
            if not isinstance(message, dict):
                raise BadRequest("messages: each message must be an object")
            text = join_texts(message.get("content"), prompt)
            if message.get("role") == "user":
                prompt.last_user = text
        return prompt

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)

    def _message(self, answer: Answer, content: list[Any], stop: str | None) -> dict[str, Any]:
        return {
            "id": answer.id,
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
        }

    def response(self, answer: Answer, body: dict[str, Any]) -> bytes:
        if answer.tool_name is not None:
            block = {**_tool_use(answer), "input": parsed_arguments(answer)}
            message = self._message(answer, [block], "tool_use")
        else:
            block = {"type": "text", "text": answer.text}
            message = self._message(answer, [block], _stop_reason(answer))
        message["usage"] = _usage(answer, answer.completion_tokens)
        return orjson.dumps(message)

    def stream(self, answer: Answer, pieces: list[str], body: dict[str, Any]) -> StreamPlan:
        message = self._message(answer, [], None)
        message["usage"] = _usage(answer, 1)
        head = _event("message_start", {"type": "message_start", "message": message})
        block_start = _BLOCK_START
        delta_of: Any = lambda piece: {"type": "text_delta", "text": piece}  # noqa: E731
        stop_reason = _stop_reason(answer)
        if answer.tool_name is not None:
            block = {**_tool_use(answer), "input": {}}
            block_start = _event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
            delta_of = lambda piece: {"type": "input_json_delta", "partial_json": piece}  # noqa: E731
            stop_reason = "tool_use"
        chunks = [
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": delta_of(piece),
                },
            )
            for piece in pieces
        ]
        delta = _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": answer.completion_tokens},
            },
        )
        return StreamPlan(
            SSE_HEADERS, head + block_start + _PING, chunks, _BLOCK_STOP + delta + _MESSAGE_STOP
        )


def _marked_prefixes(system: Any) -> list[str]:
    """The system up to each block marked `cache_control`: what Anthropic caches (nothing
    unmarked, nor a plain string)."""
    if not isinstance(system, list):
        return []
    return [
        join_texts(system[: i + 1], Prompt())
        for i, block in enumerate(system)
        if isinstance(block, dict) and block.get("cache_control")
    ]


def _usage(answer: Answer, output_tokens: int) -> dict[str, int]:
    """Anthropic's input_tokens leave out the cached prefix, read or written."""
    cached = answer.cached_tokens + answer.cache_write_tokens
    return {
        "input_tokens": answer.prompt_tokens - cached,
        "cache_creation_input_tokens": answer.cache_write_tokens,
        "cache_read_input_tokens": answer.cached_tokens,
        "output_tokens": output_tokens,
    }


def _stop_reason(answer: Answer) -> str:
    return "refusal" if answer.refusal else "end_turn"


def _tool_use(answer: Answer) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{answer.id}", "name": answer.tool_name}
