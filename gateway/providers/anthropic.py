"""Anthropic's Messages API behind the OpenAI chat format.

Request (`to_messages_request`): every system/developer message goes to the top-level
`system` as text blocks, in order (the creator's prompt first, as the gateway built it);
user, assistant and tool messages become `messages`, consecutive ones of the same role merged
into one turn as Anthropic requires (tool results are user turns). `max_tokens` is required
by Anthropic: the request's, else `DEFAULT_MAX_TOKENS`. Tool definitions, tool calls and
tool results, image parts, `stop`, `temperature` (capped at Anthropic's 1.0), `top_p` and
`user` are translated; OpenAI-only knobs (seed, penalties, logit_bias, response_format) are
dropped. Content Anthropic cannot take (audio, files) is a 400 before any call.

Answers: a message becomes an OpenAI `chat.completion`; the SSE events of a stream become
OpenAI chunks as they arrive (`AnthropicStream`). Usage counts every input token, cached or
not (`input_tokens` + cache creation + cache reads).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import orjson

from common.sse import DONE, SseEvent
from gateway.providers.anthropic_wire import (
    MESSAGE,
    STREAM_EVENT,
    Message,
    StreamEvent,
    TokenCounts,
)
from gateway.providers.base import ChatStream, Completion, Usage
from gateway.providers.errors import ProviderUnavailable
from gateway.providers.http_client import HttpAdapter
from gateway.providers.openai_answer import ChunkWriter, completion_body, tool_call_json
from gateway.providers.openai_request import (
    chosen_function,
    content_parts,
    data_url,
    functions_of,
    image_url_of,
    stop_sequences,
    texts_of,
    tool_calls_of,
    unsupported,
)
from gateway.providers.openai_wire import ChatCompletionRequest, ChatMessage, ContentPart
from gateway.providers.translated_stream import start_translated

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
MAX_TEMPERATURE = 1.0

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason else "stop"


def usage_of(counts: TokenCounts | None, into: Usage | None = None) -> Usage:
    """Anthropic usage → ours. Counts absent here keep `into`'s values (a stream reports
    input at `message_start` and the cumulative output at `message_delta`)."""
    result = into or Usage()
    if counts is None:
        return result
    if counts.input_tokens is not None:
        result.cached_input_tokens = counts.cache_read_input_tokens or 0
        result.cache_write_input_tokens = counts.cache_creation_input_tokens or 0
        result.input_tokens = (
            counts.input_tokens + result.cached_input_tokens + result.cache_write_input_tokens
        )
    if counts.output_tokens is not None:
        result.output_tokens = counts.output_tokens
    return result


# -- request ------------------------------------------------------------------------------------

# The Messages API request as we build it: our own JSON, typed where it is read again.
Block = dict[str, Any]


def _user_blocks(content: str | list[ContentPart] | None, provider: str) -> list[Block]:
    blocks: list[Block] = []
    for part in content_parts(content):
        kind = part["type"]
        if kind == "text":
            text = part.get("text", "")
            if text:  # Anthropic refuses empty text blocks
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            url = image_url_of(part)
            inline = data_url(url)
            if inline is not None:
                media_type, data = inline
                source = {"type": "base64", "media_type": media_type, "data": data}
            elif url.startswith(("https://", "http://")):
                source = {"type": "url", "url": url}
            else:
                raise unsupported(provider, "this image URL")
            blocks.append({"type": "image", "source": source})
        else:
            raise unsupported(provider, f"{kind} content")
    return blocks


def _assistant_blocks(message: ChatMessage, provider: str) -> list[Block]:
    blocks: list[Block] = [
        {"type": "text", "text": text}
        for text in texts_of(message.get("content"), provider)
        if text
    ]
    for call_id, name, arguments in tool_calls_of(message, provider):
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _tool_result(message: ChatMessage, provider: str) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise unsupported(provider, "a tool message without a tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    texts = [text for text in texts_of(message.get("content"), provider) if text]
    if texts:
        block["content"] = [{"type": "text", "text": text} for text in texts]
    return block


def _strip_final_assistant(messages: list[Block]) -> None:
    """Anthropic refuses a final (prefilled) assistant turn ending in whitespace."""
    if not messages or messages[-1]["role"] != "assistant":
        return
    blocks = messages[-1]["content"]
    while blocks and blocks[-1]["type"] == "text":
        text = blocks[-1]["text"].rstrip()
        if text:
            blocks[-1] = {"type": "text", "text": text}
            break
        blocks.pop()
    if not blocks:
        messages.pop()


def _tools(payload: ChatCompletionRequest, provider: str) -> dict[str, Any]:
    tools = payload.get("tools")
    if not tools:
        return {}
    translated = []
    for function in functions_of(tools, provider):
        entry: dict[str, object] = {
            "name": str(function.get("name", "")),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        translated.append(entry)
    fields: dict[str, Any] = {"tools": translated}
    choice = payload.get("tool_choice")
    tool_choice: dict[str, object] | None = None
    if choice == "auto":
        tool_choice = {"type": "auto"}
    elif choice == "none":
        tool_choice = {"type": "none"}
    elif choice == "required":
        tool_choice = {"type": "any"}
    elif (name := chosen_function(choice)) is not None:
        tool_choice = {"type": "tool", "name": name}
    if payload.get("parallel_tool_calls") is False:
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        fields["tool_choice"] = tool_choice
    return fields


def _system_blocks(content: Any, provider: str, *, first: bool) -> list[dict[str, Any]]:
    """A system message's text parts as blocks. On the `first` message, the agent's prompt
    as the gateway built it, a part's `cache_control` (gateway/chat_request.py
    `with_cache_mark`) stays on its block; a developer's own marks are not carried (they would
    add cache writes the platform pays for, or pass Anthropic's four)."""
    texts = texts_of(content, provider)  # refuses a part that is not text
    blocks: list[dict[str, Any]] = []
    for text, part in zip(texts, content_parts(content), strict=True):
        if text:
            block: dict[str, Any] = {"type": "text", "text": text}
            if first and part.get("cache_control"):
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
    return blocks


def to_messages_request(
    payload: ChatCompletionRequest, *, stream: bool, provider: str = "anthropic"
) -> dict[str, Any]:
    """The Messages API request for an OpenAI chat payload."""
    system: list[Block] = []
    messages: list[Block] = []
    for position, message in enumerate(payload["messages"]):
        role = message["role"]
        if role in ("system", "developer"):
            system.extend(_system_blocks(message.get("content"), provider, first=position == 0))
            continue
        if role == "assistant":
            turn, blocks = "assistant", _assistant_blocks(message, provider)
        elif role == "tool":
            turn, blocks = "user", [_tool_result(message, provider)]
        else:
            turn, blocks = "user", _user_blocks(message.get("content"), provider)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == turn:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": turn, "content": blocks})
    _strip_final_assistant(messages)
    request: dict[str, Any] = {
        "model": payload["model"],
        "messages": messages,
        "max_tokens": payload.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        request["system"] = system
    request.update(_parameters(payload))
    request.update(_tools(payload, provider))
    if stream:
        request["stream"] = True
    return request


def _parameters(payload: ChatCompletionRequest) -> dict[str, object]:
    request: dict[str, object] = {}
    temperature = payload.get("temperature")
    if temperature is not None:
        request["temperature"] = min(float(temperature), MAX_TEMPERATURE)
    if "top_p" in payload:
        request["top_p"] = payload["top_p"]
    stops = stop_sequences(payload.get("stop"))
    if stops:
        request["stop_sequences"] = stops
    user = payload.get("user")
    if user:
        request["metadata"] = {"user_id": user}
    return request


# -- answers -----------------------------------------------------------------------------------


def to_completion(body: bytes, model: str) -> Completion:
    """An Anthropic message → an OpenAI chat.completion body, and its usage."""
    try:
        message = MESSAGE.decode(body)
    except msgspec.DecodeError:
        raise ProviderUnavailable("The model provider sent an unreadable answer.") from None
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            arguments = orjson.dumps(block.input or {}).decode()
            tool_calls.append(tool_call_json(block.id, block.name, arguments))
    usage = usage_of(message.usage)
    usage.finish_reasons = (finish_reason(message.stop_reason),)
    answer = completion_body(
        id=message.id,
        created=int(time.time()),
        model=message.model or model,
        text="".join(texts),
        tool_calls=tool_calls,
        finish_reason=usage.finish_reasons[0],
        usage=usage,
    )
    return Completion(body=answer, usage=usage)


class AnthropicStream:
    """Anthropic stream events → OpenAI chunk bytes (a `StreamTranslator`)."""

    __slots__ = ("_finish", "_model", "_stopped", "_tools", "_writer", "usage")

    def __init__(self, model: str) -> None:
        self._model = model
        self._writer: ChunkWriter | None = None
        self._finish = "stop"
        self._tools: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._stopped = False
        self.usage = Usage()

    @property
    def done(self) -> bool:
        return self._stopped

    def _start(self, message: Message | None) -> bytes:
        if message is None:
            message = Message()
        self._writer = ChunkWriter(
            id=message.id, created=int(time.time()), model=message.model or self._model
        )
        usage_of(message.usage, self.usage)
        return self._writer.role()

    def feed(self, events: list[SseEvent]) -> bytes:
        out = b""
        for event in events:
            if event.event == "ping":
                continue
            if event.event == "error":
                raise _failed()
            try:
                data = STREAM_EVENT.decode(event.data)
            except msgspec.DecodeError:
                raise ProviderUnavailable("The model provider sent an unreadable stream.") from None
            out += self._event(data)
            if self._stopped:
                break
        return out

    def _event(self, data: StreamEvent) -> bytes:
        kind = data.type
        if kind == "error":
            raise _failed()
        if kind == "message_start":
            return self._start(data.message)
        writer = self._writer
        if writer is None:
            raise ProviderUnavailable("The model provider sent an unreadable stream.")
        if kind == "content_block_delta":
            return self._delta(writer, data)
        if kind == "content_block_start":
            return self._block_start(writer, data)
        if kind == "message_delta":
            stop_reason = data.delta.stop_reason if data.delta is not None else None
            if stop_reason:
                self._finish = finish_reason(stop_reason)
                self.usage.finish_reasons = (self._finish,)
            usage_of(data.usage, self.usage)
        elif kind == "message_stop":
            self._stopped = True
        return b""

    def _delta(self, writer: ChunkWriter, data: StreamEvent) -> bytes:
        delta = data.delta
        if delta is None:
            return b""
        if delta.type == "text_delta" and delta.text:
            return writer.text(delta.text)
        tool = self._tools.get(data.index)
        if tool is not None and delta.partial_json:  # an input_json_delta
            return writer.tool_call_arguments(tool, delta.partial_json)
        return b""

    def _block_start(self, writer: ChunkWriter, data: StreamEvent) -> bytes:
        block = data.content_block
        if block is None:
            return b""
        if block.type == "tool_use":
            tool = self._tools[data.index] = len(self._tools)
            return writer.tool_call_start(tool, block.id, block.name)
        if block.type == "text" and block.text:
            return writer.text(block.text)
        return b""

    def end(self) -> bytes:
        if not self._stopped or self._writer is None:
            raise ProviderUnavailable("The model provider ended the stream early.")
        writer = self._writer
        return writer.finish(self._finish) + writer.usage(self.usage) + DONE


def _failed() -> ProviderUnavailable:
    # Overloaded or failing mid-stream; the message is never quoted (it may echo the
    # request, and the request holds the creator's prompt).
    return ProviderUnavailable("The model provider failed during the answer.")


# -- the adapter ----------------------------------------------------------------------------------


def _endpoint(base_url: str) -> str:
    base = base_url.rstrip("/")
    return (base if base.endswith("/v1") else base + "/v1") + "/messages"


class AnthropicProvider(HttpAdapter):
    def __init__(
        self, name: str, base_url: str, api_key: str, session: aiohttp.ClientSession
    ) -> None:
        super().__init__(name, session, {"x-api-key": api_key, "anthropic-version": API_VERSION})
        self._url = _endpoint(base_url)

    async def complete(
        self, payload: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> Completion:
        body = orjson.dumps(to_messages_request(payload, stream=False, provider=self.name))
        return to_completion(await self._post(self._url, body, headers), payload["model"])

    @contextlib.asynccontextmanager
    async def stream(
        self, payload: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> AsyncIterator[ChatStream]:
        body = orjson.dumps(to_messages_request(payload, stream=True, provider=self.name))
        response = await self._open_stream(self._url, body, headers)
        try:
            yield await start_translated(response, AnthropicStream(payload["model"]))
        finally:
            response.close()
