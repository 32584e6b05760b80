"""Gemini generateContent / streamGenerateContent: request parsing and response bodies."""

from __future__ import annotations

from typing import Any

import orjson

from common.sse import encode_event
from mock_provider.asgi import JSON_STREAM_HEADERS, SSE_HEADERS
from mock_provider.reply import Answer, BadRequest, Prompt, join_texts, parsed_arguments
from mock_provider.streaming import StreamPlan

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str) -> bytes:
    """``{"error": {"code", "message", "status"}}`` as Google APIs send it."""
    name = _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return orjson.dumps({"error": {"code": status, "message": message, "status": name}})


def _parts(content: Any, prompt: Prompt) -> str:
    if not isinstance(content, dict):
        raise BadRequest("Invalid value at 'contents': each content must be an object")
    return join_texts(content.get("parts"), prompt)


def _part_prefixes(system: dict[str, Any]) -> list[str]:
    parts = system.get("parts")
    if not isinstance(parts, list):
        return []
    return [join_texts(parts[: i + 1], Prompt()) for i in range(len(parts))]


class GeminiGenerate:
    """``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``; ``sse``
    selects the ``?alt=sse`` framing of the stream over the default streamed JSON array."""

    id_prefix = "mock-"

    def __init__(self, *, sse: bool) -> None:
        self._sse = sse

    def parse(self, body: dict[str, Any]) -> Prompt:
        contents = body.get("contents")
        if not isinstance(contents, list):
            raise BadRequest("Invalid JSON payload: 'contents' must be a list")
        prompt = Prompt()
        system = body.get("systemInstruction", body.get("system_instruction"))
        if system is not None:
            prompt.system.append(_parts(system, prompt))
            prompt.prefixes = _part_prefixes(system)  # Gemini caches a prefix implicitly
        for content in contents:
            text = _parts(content, prompt)
            if content.get("role", "user") == "user":
                prompt.last_user = text
        return prompt

    def error(self, status: int, message: str) -> bytes:
        return error_body(status, message)

    def _chunk(self, answer: Answer, text: str, tokens: int, last: bool) -> dict[str, Any]:
        part: dict[str, Any] = {"text": text}
        if answer.tool_name is not None:  # Gemini sends a function call whole, never in pieces
            part = {"functionCall": {"name": answer.tool_name, "args": parsed_arguments(answer)}}
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}}
        if last:
            candidate["finishReason"] = "SAFETY" if answer.refusal else "STOP"
        candidate["index"] = 0
        usage = {
            "promptTokenCount": answer.prompt_tokens,
            "candidatesTokenCount": tokens,
            "totalTokenCount": answer.prompt_tokens + tokens,
        }
        if answer.cached_tokens:  # within promptTokenCount; Gemini leaves it out when 0
            usage["cachedContentTokenCount"] = answer.cached_tokens
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": answer.model,
            "responseId": answer.id,
        }

    def response(self, answer: Answer, body: dict[str, Any]) -> bytes:
        return orjson.dumps(self._chunk(answer, answer.text, answer.completion_tokens, True))

    def stream(self, answer: Answer, pieces: list[str], body: dict[str, Any]) -> StreamPlan:
        if answer.tool_name is not None:
            pieces = [answer.arguments]
        count = len(pieces)
        # usageMetadata is cumulative on every chunk; the last one carries the totals.
        payloads = [
            orjson.dumps(
                self._chunk(
                    answer, piece, answer.completion_tokens * (i + 1) // count, i == count - 1
                )
            )
            for i, piece in enumerate(pieces)
        ]
        if self._sse:
            return StreamPlan(SSE_HEADERS, b"", [encode_event(p) for p in payloads], b"")
        chunks = [payload if i == 0 else b",\r\n" + payload for i, payload in enumerate(payloads)]
        return StreamPlan(JSON_STREAM_HEADERS, b"[", chunks, b"]")
