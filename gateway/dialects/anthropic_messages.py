"""Anthropic's Messages API as an inbound dialect: `POST .../agents/{agent_id}/v1/messages`.

The official `anthropic` SDK with `base_url=http://host/proxy/v1/agents/{agent_id}` appends
`/v1/messages` and sends the key as `Authorization: Bearer` (`X-Api-Key` and
`X-AgentLink-Key` work too). The request is translated by gateway/dialects/anthropic_request.py;
`MessagesEndpoint` runs it through the chat pipeline (`call_agent`) with `AnthropicEdge`,
which translates what the pipeline answers (gateway/edge.py):

- a chat.completion → a `message` (text and `tool_use` blocks, `stop_reason`, `usage` with
  `input_tokens`, `cache_creation_input_tokens`, `cache_read_input_tokens`, `output_tokens`,
  and the call's `cost` / `cost_units`);
- the client-ready OpenAI chunks → Anthropic's event sequence: `message_start`, per block
  `content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`) /
  `content_block_stop`, then `message_delta` (stop reason, cumulative usage with the cost) and
  `message_stop`;
- every error → `{"type": "error", "error": {"type", "message", "code", "details"?},
  "request_id"}` (Anthropic's envelope, with our code and request id beside), and a stream
  broken after the 200 → an `error` event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from common.asgi import Receive, Send
from common.errors import HTTP_STATUS, ApiError, ErrorCode
from gateway.client_usage import UsageChunks, with_cost
from gateway.dialects.anthropic_request import parse_messages_request
from gateway.edge import JSON_HEADERS, SSE_HEADERS
from gateway.openai_edge import call_cost
from gateway.proxy import AgentEndpoint

if TYPE_CHECKING:
    from gateway.chat_request import ChatRequest
    from gateway.edge import Answer, StreamBreak
    from gateway.proxy import Call


STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",  # the leak guard's withheld answer too
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _message_id(openai_id: object) -> str:
    text = openai_id if isinstance(openai_id, str) else ""
    return "msg_" + text.removeprefix("chatcmpl-")


def _usage(usage: object) -> dict[str, Any]:
    """OpenAI usage → Anthropic's, whose `input_tokens` leave out the prompt-cache reads and
    writes it counts apart (OpenAI's `prompt_tokens` include them)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    out: dict[str, Any] = {
        "input_tokens": max(int(usage.get("prompt_tokens") or 0) - read - written, 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    for name in ("cost", "cost_units"):
        if name in usage:
            out[name] = usage[name]
    return out


def _input_of(arguments: object) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def message_of(completion: bytes) -> bytes:
    """A chat.completion body → an Anthropic `message` body."""
    data = orjson.loads(completion)
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = _text_of(message.get("content")) or _text_of(message.get("refusal"))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({
            "type": "tool_use", "id": str(call.get("id", "")),
            "name": str(function.get("name", "")),
            "input": _input_of(function.get("arguments")),
        })  # fmt: skip
    return orjson.dumps({
        "id": _message_id(data.get("id")),
        "type": "message",
        "role": "assistant",
        "model": str(data.get("model", "")),
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(data.get("usage")),
    })  # fmt: skip


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessageEvents:
    """OpenAI chunk events (whole, as the client would have got them) → Anthropic events."""

    __slots__ = ("_blocks", "_done", "_open", "_pending", "_started", "_stop", "_usage")

    def __init__(self) -> None:
        self._pending = b""
        self._started = False
        self._done = False
        self._blocks = 0  # content blocks started so far
        self._open: tuple[str, int] | None = None  # ("text", -1) or ("tool", openai index)
        self._stop = "end_turn"
        self._usage: dict[str, Any] = {"input_tokens": 0, "output_tokens": 0}

    def feed(self, events: bytes) -> bytes:
        # Every chunk is one `data:` line, so a whole line is a whole event.
        data = self._pending + events
        end = data.rfind(b"\n")
        if end < 0:
            self._pending = data
            return b""
        self._pending = data[end + 1 :]
        out: list[bytes] = []
        for raw in data[:end].split(b"\n"):
            line = raw.strip()
            if not line.startswith(b"data:") or self._done:
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                out.append(self._close())
            elif payload.startswith(b"{"):
                out.append(self._chunk(orjson.loads(payload)))
        return b"".join(out)

    def finish(self) -> bytes:
        rest = self.feed(b"\n") if self._pending.strip() else b""
        return rest + (b"" if self._done else self._close())

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": _message_id(chunk.get("id")), "type": "message", "role": "assistant",
            "model": str(chunk.get("model", "")), "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0},
        }  # fmt: skip
        return _event("message_start", {"type": "message_start", "message": message})

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = [b"" if self._started else self._start(chunk)]
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = _text_of(delta.get("content")) or _text_of(delta.get("refusal"))
            if text:
                out.append(self._text(text))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool(call))
            reason = choice.get("finish_reason")
            if reason:
                self._stop = STOP_REASONS.get(reason, "end_turn")
        return b"".join(out)

    def _begin(self, kind: tuple[str, int], block: dict[str, Any]) -> bytes:
        out = self._end_block()
        self._open = kind
        start = {"type": "content_block_start", "index": self._blocks, "content_block": block}
        return out + _event("content_block_start", start)

    def _end_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        self._blocks += 1
        stop = {"type": "content_block_stop", "index": self._blocks - 1}
        return _event("content_block_stop", stop)

    def _delta(self, delta: dict[str, Any]) -> bytes:
        event = {"type": "content_block_delta", "index": self._blocks, "delta": delta}
        return _event("content_block_delta", event)

    def _text(self, text: str) -> bytes:
        out = (
            b""
            if self._open == ("text", -1)
            else self._begin(("text", -1), {"type": "text", "text": ""})
        )
        return out + self._delta({"type": "text_delta", "text": text})

    def _tool(self, call: object) -> bytes:
        if not isinstance(call, dict):
            return b""
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        out = b""
        if self._open != ("tool", index):
            block = {"type": "tool_use", "id": str(call.get("id", "")),
                     "name": str(function.get("name", "")), "input": {}}  # fmt: skip
            out = self._begin(("tool", index), block)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments})
        return out

    def _close(self) -> bytes:
        self._done = True
        out = b"" if self._started else self._start({})
        delta = {"stop_reason": self._stop, "stop_sequence": None}
        message_delta = {"type": "message_delta", "delta": delta, "usage": self._usage}
        return (
            out
            + self._end_block()
            + _event("message_delta", message_delta)
            + _event("message_stop", {"type": "message_stop"})
        )


def error_payload(
    code: ErrorCode, message: str, request_id: str, details: Any = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": error_type(HTTP_STATUS[code]), "message": message, "code": code.value,
    }  # fmt: skip
    if details is not None:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": request_id}


class AnthropicEdge:
    """The pipeline's answer, as Anthropic's Messages API gives it (gateway/edge.py)."""

    __slots__ = ("_send", "receive", "started")

    def __init__(self, receive: Receive, send: Send) -> None:
        self.started = False  # the response has begun: an error can only end it
        self.receive = receive
        self._send = send

    async def answer(self, call: Call, completion: Answer, *, billed: bool) -> None:
        body = message_of(with_cost(completion.body, call_cost(call), billed=billed))
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        headers += call.admission.headers()
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def open_stream(self, call: Call) -> AnthropicStream:
        headers = [*SSE_HEADERS, *call.admission.headers()]
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        # The usage chunk always passes (with the cost): the final message_delta carries it.
        usage = UsageChunks(include_usage=True, cost=call_cost(call))
        return AnthropicStream(self._send, usage, call.request_id)


class AnthropicStream:
    """OpenAI chunks, as the guard released them → Anthropic's events (a `StreamSink`)."""

    __slots__ = ("_events", "_request_id", "_send", "_usage")

    def __init__(self, send: Send, usage: UsageChunks, request_id: str) -> None:
        self._send = send
        self._usage = usage
        self._events = MessageEvents()
        self._request_id = request_id

    async def send(self, sse: bytes, *, withheld: bool) -> None:
        self._usage.billed = not withheld
        out = self._events.feed(self._usage.feed(sse))
        if out:
            await self._send({"type": "http.response.body", "body": out, "more_body": True})

    async def close(self, broken: StreamBreak | None, *, withheld: bool) -> None:
        self._usage.billed = not withheld
        out = self._events.feed(self._usage.finish())
        if broken is None:
            out += self._events.finish()
        else:
            # Broken after the 200: Anthropic's `error` event ends the stream (no message_stop).
            out += _event("error", error_payload(broken.code, broken.message, self._request_id))
        await self._send({"type": "http.response.body", "body": out})  # and the end: one write


class MessagesEndpoint(AgentEndpoint[AnthropicEdge]):
    """ASGI endpoint for `POST /proxy/v1/agents/{agent_id}/v1/messages`."""

    def parse(self, body: bytes) -> ChatRequest:
        return parse_messages_request(body)

    def edge(self, receive: Receive, send: Send) -> AnthropicEdge:
        return AnthropicEdge(receive, send)

    async def refused(
        self, error: ApiError, edge: AnthropicEdge, send: Send, request_id: str
    ) -> None:
        if edge.started:
            raise error
        await _send_error(send, error, request_id)


async def _send_error(send: Send, error: ApiError, request_id: str) -> None:
    """Anthropic's error envelope, with the status and headers (`x-should-retry`,
    `retry-after`, rate limit) the chat routes would send."""
    body = orjson.dumps(error_payload(error.code, error.message, request_id, error.details))
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()),
               (b"x-request-id", request_id.encode())]  # fmt: skip
    for name, value in error.headers.items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send(
        {"type": "http.response.start", "status": HTTP_STATUS[error.code], "headers": headers}
    )
    await send({"type": "http.response.body", "body": body})
