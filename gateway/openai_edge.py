"""The OpenAI chat completions edge: the answer as OpenAI's API gives it (the chat routes).

A JSON answer gets the call's cost in its `usage`; a stream is relayed as the guard released
it, with the usage chunk only when the client asked for one (gateway/client_usage.py). Every
answer carries the admission's headers (rate limit, quota, units, trials).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from common.asgi import Receive, Send
from common.errors import error_body
from common.sse import DONE
from gateway.client_usage import CallCost, UsageChunks, add_cost
from gateway.edge import JSON_HEADERS, SSE_HEADERS

if TYPE_CHECKING:
    from gateway.edge import Answer, StreamBreak
    from gateway.proxy import Call


def call_cost(call: Call) -> CallCost:
    return call.state.costs.of(call.admission.units_charged)


class OpenAIEdge:
    __slots__ = ("_send", "receive")

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self._send = send

    async def answer(self, call: Call, completion: Answer, *, billed: bool) -> None:
        data = completion.data
        body = (
            completion.body
            if data is None
            else orjson.dumps(add_cost(data, call_cost(call), billed=billed))
        )
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        headers += call.admission.headers()
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def open_stream(self, call: Call) -> OpenAIStream:
        headers = [*SSE_HEADERS, *call.admission.headers()]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        usage = UsageChunks(include_usage=call.include_usage, cost=call_cost(call))
        return OpenAIStream(self._send, usage, call.request_id)


class OpenAIStream:
    """The stream's bytes to the client. What ends with `[DONE]` waits for the response's
    end (the provider's end of stream, which follows it at once), to go out with it in one
    write: a write to the socket is the largest part of a send's cost."""

    __slots__ = ("_done", "_request_id", "_send", "_usage")

    def __init__(self, send: Send, usage: UsageChunks, request_id: str) -> None:
        self._send = send
        self._usage = usage
        self._request_id = request_id
        self._done = b""  # output that ends with [DONE], not sent yet

    async def send(self, sse: bytes, *, withheld: bool) -> None:
        self._usage.billed = not withheld
        out = self._usage.feed(sse)
        if self._done:  # more after [DONE] (no provider does that): in order, at once
            out, self._done = self._done + out, b""
        if out.endswith(DONE):
            self._done = out
        elif out:
            await self._send({"type": "http.response.body", "body": out, "more_body": True})

    async def close(self, broken: StreamBreak | None, *, withheld: bool) -> None:
        self._usage.billed = not withheld
        out = self._done + self._usage.finish()
        if broken is not None:
            # The stream broke after we answered 200: tell the client in-band, then end.
            out += b"data: " + error_body(broken.code, broken.message, self._request_id) + b"\n\n"
        await self._send({"type": "http.response.body", "body": out})
