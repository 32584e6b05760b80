"""The MCP edge: an agent's answer as a `tools/call` result (gateway/edge.py).

Without a progress token the provider is called once and the answer is one JSON-RPC
response. With one (and a client that accepts SSE), the provider's stream is relayed as
`notifications/progress` events, each carrying the text the leak guard released since the
last, and the last event is the result with the whole answer. The result's `_meta` says what
the call cost (`agentlink/usage`: units, USD, trial calls left), as the chat answer's
`usage` and headers do; a refusal or failure is a result with `isError` and the code's
readable message (`agentlink/error`), so the model that called the tool can read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from common.asgi import Receive, Send
from common.errors import ApiError
from common.sse import SseEvent, SseParser, encode_event
from common.validation import money_text
from gateway.edge import SSE_HEADERS
from gateway.mcp import protocol
from gateway.openai_edge import call_cost

if TYPE_CHECKING:
    from gateway.edge import Answer, StreamBreak
    from gateway.proxy import Call


def tool_result(text: str, *, is_error: bool = False, meta: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": is_error, "_meta": meta}


def error_result(error: ApiError) -> dict[str, Any]:
    """A call refused or failed before its answer: the message, with each detail's field."""
    text = error.message
    details = error.details if isinstance(error.details, list) else []
    problems = [
        f"{item['field']} {item['message']}"
        for item in details
        if isinstance(item, dict) and "field" in item and "message" in item
    ]
    if problems:
        text += " " + "; ".join(problems) + "."
    text += f" (AgentLink error {error.code.value})"
    info: dict[str, Any] = {"code": error.code.value, "status": error.status}
    if error.details is not None:
        info["details"] = error.details
    if retry_after := error.headers.get("retry-after"):
        info["retry_after_s"] = int(retry_after)
    return tool_result(text, is_error=True, meta={"agentlink/error": info})


def _usage_meta(call: Call, *, billed: bool) -> dict[str, Any]:
    cost = call_cost(call)
    units, usd = (cost.units, money_text(cost.usd)) if billed else (0, "0")
    admission = call.admission
    return {
        "agentlink/usage": {
            "units": units, "cost": usd, "quota_remaining": admission.quota_remaining,
            "trials_remaining": admission.trials_remaining,
        }
    }  # fmt: skip


def completion_text(data: dict[str, Any] | None) -> str:
    """The answer's text in a chat.completion (its JSON object, gateway/edge.py's `Answer`):
    the first choice's content (or its refusal)."""
    try:
        message = data["choices"][0]["message"] if data is not None else None
    except (KeyError, IndexError, TypeError):
        return ""
    return _text_fields(message) if isinstance(message, dict) else ""


def _text_fields(part: dict[str, Any]) -> str:
    content = part.get("content")
    if isinstance(content, list):
        content = "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    texts = [t for t in (content, part.get("refusal")) if isinstance(t, str) and t]
    return "\n".join(texts)


class McpEdge:
    """One `tools/call`. `progress_token` is None for a JSON answer."""

    __slots__ = ("_headers", "_message_id", "_progress_token", "_send", "receive", "started")

    def __init__(
        self,
        receive: Receive,
        send: Send,
        message_id: protocol.RequestId,
        headers: list[tuple[bytes, bytes]],
        progress_token: protocol.RequestId | None,
    ) -> None:
        self.receive = receive
        self._send = send
        self._message_id = message_id
        self._headers = headers
        self._progress_token = progress_token
        self.started = False

    async def send_json(
        self, result: dict[str, Any], extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        body = protocol.result_body(self._message_id, result)
        headers = [*self._headers, *extra, (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def refuse(self, error: ApiError) -> None:
        if not self.started:
            extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
            await self.send_json(error_result(error), extra)

    async def answer(self, call: Call, completion: Answer, *, billed: bool) -> None:
        meta = _usage_meta(call, billed=billed)
        await self.send_json(tool_result(completion_text(completion.data), meta=meta),
                             call.admission.headers())  # fmt: skip

    async def open_stream(self, call: Call) -> McpProgress:
        headers = [*self._headers, *SSE_HEADERS, *call.admission.headers()]
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        return McpProgress(self._send, self._message_id, self._progress_token, call)


class McpProgress:
    """The stream: guarded OpenAI chunks in, progress notifications and the result out."""

    __slots__ = ("_call", "_events", "_message_id", "_send", "_text", "_token")

    def __init__(
        self,
        send: Send,
        message_id: protocol.RequestId,
        token: protocol.RequestId | None,
        call: Call,
    ) -> None:
        self._send = send
        self._message_id = message_id
        self._token = token
        self._call = call
        self._events = SseParser()
        self._text: list[str] = []

    async def _event(self, payload: bytes, *, more: bool = True) -> None:
        body = encode_event(payload, "message")
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def send(self, sse: bytes, *, withheld: bool) -> None:
        await self._progress(self._events.feed(sse))

    async def _progress(self, events: list[SseEvent]) -> None:
        delta = "".join(_delta_text(event.data) for event in events)
        if delta:
            self._text.append(delta)
            if self._token is None:
                return
            params = {"progressToken": self._token, "progress": sum(map(len, self._text)),
                      "message": delta}  # fmt: skip
            await self._event(protocol.notification_body("notifications/progress", params))

    async def close(self, broken: StreamBreak | None, *, withheld: bool) -> None:
        await self._progress(self._events.flush())
        text = "".join(self._text)
        if broken is not None:
            error = ApiError(broken.code, broken.message)
            result = error_result(error)
            if text:
                result["content"].insert(0, {"type": "text", "text": text})
        else:
            result = tool_result(text, meta=_usage_meta(self._call, billed=not withheld))
        await self._event(protocol.result_body(self._message_id, result), more=False)


def _delta_text(data: bytes) -> str:
    """The text a chat.completion.chunk's first choice adds (none for [DONE] or usage)."""
    if not data.startswith(b"{"):
        return ""  # [DONE]
    try:
        chunk = orjson.loads(data)
        delta = chunk["choices"][0]["delta"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return ""  # the usage chunk (no choices), anything that is not a chunk
    return _text_fields(delta) if isinstance(delta, dict) else ""
