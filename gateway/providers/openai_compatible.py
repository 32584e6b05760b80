"""OpenAI and everything that speaks its chat API (vLLM, Ollama, Together, Groq, the mock).

Non-streaming answers are forwarded as the provider sent them. Streams are a byte
passthrough: chunks go to the client as they arrive, and a tap keeps only the tail of the
stream to read `usage` from the last chunk and to see `[DONE]` at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from gateway.providers.base import ChatStream, Completion, Usage
from gateway.providers.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)

_TAIL_BYTES = 4096
_DONE = b"data: [DONE]"


def usage_from(data: dict[str, Any]) -> Usage:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
    )


def usage_from_sse_tail(tail: bytes) -> Usage:
    """The usage of the last SSE event that carries one (OpenAI puts it in the final chunk)."""
    for raw_event in reversed(tail.split(b"\n\n")):
        event = raw_event.strip()
        if event.startswith(b"data: {") and b'"usage"' in event:
            try:
                data = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                continue  # the tail cut this event; an earlier one may be whole
            if isinstance(data, dict) and isinstance(data.get("usage"), dict):
                return usage_from(data)
    return Usage()


class OpenAICompatibleProvider:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        *,
        timeout: httpx.Timeout,
        max_connections: int = 1000,
    ) -> None:
        self.name = name
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, payload: dict[str, Any], *, headers: dict[str, str]) -> Completion:
        try:
            response = await self._client.post(
                "/chat/completions", content=orjson.dumps(payload), headers=headers
            )
        except httpx.TimeoutException:
            raise ProviderTimeout("The model provider timed out.") from None
        except httpx.HTTPError:
            raise ProviderUnavailable("The model provider could not be reached.") from None
        if response.status_code >= 300:
            raise error_for_status(response.status_code, self.name)
        body = response.content
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ProviderUnavailable("The model provider sent an unreadable answer.") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable("The model provider sent an unreadable answer.")
        return Completion(body=body, usage=usage_from(data))

    @contextlib.asynccontextmanager
    async def stream(
        self, payload: dict[str, Any], *, headers: dict[str, str]
    ) -> AsyncIterator[ChatStream]:
        request = self._client.build_request(
            "POST", "/chat/completions", content=orjson.dumps(payload), headers=headers
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise ProviderTimeout("The model provider timed out.") from None
        except httpx.HTTPError:
            raise ProviderUnavailable("The model provider could not be reached.") from None
        try:
            if response.status_code >= 300:
                await response.aread()
                raise error_for_status(response.status_code, self.name)
            chat_stream = ChatStream(chunks=_empty())
            chat_stream.chunks = self._relay(response, chat_stream)
            yield chat_stream
        finally:
            await response.aclose()

    async def _relay(
        self, response: httpx.Response, chat_stream: ChatStream
    ) -> AsyncIterator[bytes]:
        tail = b""
        try:
            async for chunk in response.aiter_raw():
                tail = (tail + chunk)[-_TAIL_BYTES:]
                yield chunk
        except httpx.TimeoutException:
            raise ProviderTimeout("The model provider stopped sending.") from None
        except httpx.HTTPError:
            raise ProviderUnavailable("The model provider broke the stream.") from None
        chat_stream.usage = usage_from_sse_tail(tail)
        chat_stream.completed = _DONE in tail
        if not chat_stream.completed:
            raise ProviderUnavailable("The model provider ended the stream early.")


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


__all__ = ["OpenAICompatibleProvider", "ProviderError", "usage_from_sse_tail"]
