"""The HTTP/1.1 protocol both apps are served with: uvicorn's httptools protocol with the limits
a public server needs and its own error answers in our envelope (issue 9, items 7 and 10).

Every server command names it (`--http common.http_server:GuardedHttpProtocol`: devstack, both
Dockerfiles, hence k8s) together with `--limit-concurrency` (the connection cap per worker).

- The request line and headers may take `MAX_HEAD_BYTES` and `MAX_HEADERS` fields; beyond
  either the answer is 431 `43101` and the connection closes. Counted while they arrive, so an
  8 MB header line is cut at the limit, not buffered.
- A request's head must be complete `HEAD_TIMEOUT_S` after the connection opened or the
  request began, and its body may pause at most `BODY_IDLE_TIMEOUT_S` between chunks; else
  408 `40801` (when no answer has begun) and the connection closes. Without this a half-sent
  request holds its connection and file descriptor forever.
- Over `--limit-concurrency` connections, a new one is answered 503 `50304` and closed at once;
  a request arriving while that many requests are still running (their clients may have left)
  or that many connections are open gets the same answer, where uvicorn's own check would
  have answered it in plain text.
- Malformed HTTP (conflicting Content-Length, Content-Length with chunked, a NUL in a header)
  is 400 `40001` in the envelope instead of uvicorn's plain text.

The limits are class attributes so a test can serve a subclass with short timeouts.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from common.errors import DEFAULT_MESSAGE, HTTP_STATUS, ErrorCode

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}  # fmt: skip


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the parser stops at once."""


class _Busy(Exception):
    """Raised from a parser callback: over the concurrency limit (the parser stops)."""


def error_response(code: ErrorCode, message: str | None = None) -> bytes:
    """A complete HTTP/1.1 answer carrying the error envelope; the connection closes after."""
    request_id = str(uuid.uuid4())
    body = orjson.dumps({
        "error": {"code": code.value, "message": message or DEFAULT_MESSAGE[code]},
        "request_id": request_id,
    })  # fmt: skip
    status = HTTP_STATUS[code]
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error")),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"x-request-id: " + request_id.encode(),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class GuardedHttpProtocol(HttpToolsProtocol):
    MAX_HEAD_BYTES: ClassVar[int] = 32 * 1024
    MAX_HEADERS: ClassVar[int] = 100
    HEAD_TIMEOUT_S: ClassVar[float] = 10.0
    BODY_IDLE_TIMEOUT_S: ClassVar[float] = 30.0

    _head_bytes = 0
    _header_count = 0
    _phase = "idle"  # idle (between requests) -> head -> body -> idle
    _reading: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limit_concurrency
        # `>=` with this one counted: uvicorn's own check (plain text) would refuse it later.
        if limit is not None and len(self.connections) >= limit:
            self._refuse(ErrorCode.SERVER_BUSY)
            return
        self._arm(self.HEAD_TIMEOUT_S)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._reading is None and self._phase == "idle":
            self._arm(self.HEAD_TIMEOUT_S)  # a new request on a kept-alive connection
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadTooLarge):
                self._refuse(ErrorCode.HEADERS_TOO_LARGE)
            elif isinstance(error.__context__, _Busy):
                self._refuse(ErrorCode.SERVER_BUSY)
            else:
                self._refuse(ErrorCode.INVALID_REQUEST, "Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self._refuse(ErrorCode.INVALID_REQUEST, "Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._phase == "head":  # still incomplete after this chunk
            self._head_bytes += len(data)
            if self._head_bytes > self.MAX_HEAD_BYTES:
                self._refuse(ErrorCode.HEADERS_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        self._refuse(ErrorCode.INVALID_REQUEST, msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._head_bytes, self._header_count = "head", 0, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.MAX_HEADERS:
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        limit = self.limit_concurrency
        # uvicorn's own condition, checked first so that its plain-text 503 never answers.
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            raise _Busy
        self._phase = "body"
        self._arm(self.BODY_IDLE_TIMEOUT_S)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self.BODY_IDLE_TIMEOUT_S)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = "idle"
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._reading = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None

    def _read_timed_out(self) -> None:
        self._reading = None
        if self.transport.is_closing():
            return
        if self._phase == "idle" and self.cycle is not None:
            # Idle between requests: the keep-alive timeout's job, not ours.
            return
        self._refuse(ErrorCode.REQUEST_TIMEOUT)

    def _refuse(self, code: ErrorCode, message: str | None = None) -> None:
        """Answer (unless an answer has begun) and close; the app, if it is reading the
        body, sees the client gone."""
        self._disarm()
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(error_response(code, message))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
