"""Request builders and SSE readers for the three wire formats the mock speaks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from common.sse import SseEvent, SseParser

FORMATS = ("openai", "anthropic", "gemini")


def chat_request(
    fmt: str, user: str, *, system: str | None = None, stream: bool = False
) -> tuple[str, dict[str, Any]]:
    """The path and JSON body of a one-turn chat request in format ``fmt``."""
    if fmt == "openai":
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": user})
        return "/v1/chat/completions", {"model": "gpt-mock", "messages": messages, "stream": stream}
    if fmt == "anthropic":
        body: dict[str, Any] = {
            "model": "claude-mock",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": user}],
            "stream": stream,
        }
        if system is not None:
            body["system"] = system
        return "/v1/messages", body
    assert fmt == "gemini"
    body = {"contents": [{"role": "user", "parts": [{"text": user}]}]}
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/gemini-mock:{action}", body


def reply_text(fmt: str, body: dict[str, Any]) -> str:
    """The answer text of a non-streaming response."""
    if fmt == "openai":
        return str(body["choices"][0]["message"]["content"])
    if fmt == "anthropic":
        return str(body["content"][0]["text"])
    return str(body["candidates"][0]["content"]["parts"][0]["text"])


def sse_events(response: httpx.Response) -> Iterator[tuple[str | None, str]]:
    """(event name, data) of each server-sent event, as they arrive (read by `common.sse`,
    which splits lines on line feeds only, as SSE specifies: httpx's ``iter_lines`` also
    splits on U+0085, U+2028... which JSON strings may hold verbatim)."""
    parser = SseParser()
    for chunk in response.iter_bytes():
        for event in parser.feed(chunk):
            yield _named(event)
    for event in parser.flush():
        yield _named(event)


def _named(event: SseEvent) -> tuple[str | None, str]:
    return (None if event.event == "message" else event.event), event.data.decode()


def stream_pieces(fmt: str, response: httpx.Response) -> Iterator[str]:
    """The content chunks of a streamed answer, as they arrive (role-only chunks skipped)."""
    for event, data in sse_events(response):
        if fmt == "openai":
            if data == "[DONE]":
                continue
            choices = orjson.loads(data)["choices"]
            if choices and "content" in choices[0]["delta"] and "role" not in choices[0]["delta"]:
                yield choices[0]["delta"]["content"]
        elif fmt == "anthropic":
            if event == "content_block_delta":
                yield orjson.loads(data)["delta"]["text"]
        else:
            yield orjson.loads(data)["candidates"][0]["content"]["parts"][0]["text"]


def error_of(fmt: str, body: dict[str, Any]) -> tuple[str, str]:
    """(error type or status name, message) of an error body, checking its shape."""
    if fmt == "openai":
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        return body["error"]["type"], body["error"]["message"]
    if fmt == "anthropic":
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
        return body["error"]["type"], body["error"]["message"]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "status"}
    return body["error"]["status"], body["error"]["message"]
