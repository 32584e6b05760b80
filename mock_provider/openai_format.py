"""OpenAI chat completions: request parsing, chat.completion and chat.completion.chunk bodies."""

from __future__ import annotations

from typing import Any

import orjson

from common.sse import DONE, encode_event
from mock_provider.asgi import SSE_HEADERS
from mock_provider.reply import Answer, BadRequest, Prompt, join_texts
from mock_provider.streaming import StreamPlan

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
}
_SYSTEM_ROLES = frozenset(("system", "developer"))


def error_body(status: int, message: str) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it."""
    kind, code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _event(payload: dict[str, Any]) -> bytes:
    return encode_event(orjson.dumps(payload))


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.total_tokens,
        # OpenAI caches a repeated prefix by itself and counts it here, within prompt_tokens.
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens},
    }


class OpenAIChat:
    """``POST /v1/chat/completions``."""

    id_prefix = "chatcmpl-mock"

    def parse(self, body: dict[str, Any]) -> Prompt:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise BadRequest("'messages' is a required property and must be an array")
        prompt = Prompt()
        opening = True  # the system messages the conversation opens with are cacheable
        for message in messages:
            if not isinstance(message, dict):
                raise BadRequest("each message must be an object")
            role = message.get("role")
            text = join_texts(message.get("content"), prompt)
            if role in _SYSTEM_ROLES:
                prompt.system.append(text)
                if opening:
                    prompt.prefixes.append("\n".join(prompt.system))
                continue
            opening = False
            if role == "user":
                prompt.last_user = text
        return prompt

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)

    def response(self, answer: Answer, body: dict[str, Any]) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        finish_reason = "stop"
        if answer.refusal:
            message["content"], message["refusal"] = None, answer.text
        if answer.tool_name is not None:
            message["content"] = None
            message["tool_calls"] = [_tool_call(answer, answer.arguments)]
            finish_reason = "tool_calls"
        return orjson.dumps(
            {
                "id": answer.id,
                "object": "chat.completion",
                "created": answer.created,
                "model": answer.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": _usage(answer),
                "system_fingerprint": None,
            }
        )

    def stream(self, answer: Answer, pieces: list[str], body: dict[str, Any]) -> StreamPlan:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        base: dict[str, Any] = {
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": answer.created,
            "model": answer.model,
            "system_fingerprint": None,
            "choices": None,
        }
        if include_usage:
            base["usage"] = None  # every chunk but the last carries "usage": null

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _event({**base, "choices": [choice]})

        head = chunk({"role": "assistant", "content": "", "refusal": None})
        finish_reason = "stop"
        if answer.tool_name is not None:
            head += chunk({"tool_calls": [{"index": 0, **_tool_call(answer, "")}]})
            chunks = [
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in pieces
            ]
            finish_reason = "tool_calls"
        else:
            field = "refusal" if answer.refusal else "content"
            chunks = [chunk({field: piece}) for piece in pieces]
        tail = chunk({}, finish_reason)
        if include_usage:
            tail += _event({**base, "choices": [], "usage": _usage(answer)})
        return StreamPlan(SSE_HEADERS, head, chunks, tail + DONE)


def _tool_call(answer: Answer, arguments: str) -> dict[str, Any]:
    function = {"name": answer.tool_name, "arguments": arguments}
    return {"id": f"call_{answer.id}", "type": "function", "function": function}
