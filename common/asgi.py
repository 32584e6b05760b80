"""Pure ASGI plumbing both apps share: request ids, the error envelope, bounded body reads.

`RequestIdMiddleware` is the outermost middleware of each app. It gives every request an id
(the client's `X-Request-ID` if it is sane, else a new UUID), puts it in `scope["state"]` and
adds it to every response.

`ErrorEnvelopeMiddleware` is the one place where an exception becomes a response: `ApiError`
with its own status, anything else as a bare 500 `50001` (logged once, with the request id,
never echoed to the client). It sits inside whatever middleware must still see the error
responses (the control plane's CORS). Starlette's own routing errors (404, 405) reach it as
`ApiError`s: `common/http_errors.py` turns them into those before Starlette can answer.

`EnvelopeMiddleware` is both in one, for an app with nothing between them (the gateway).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from common.errors import HTTP_STATUS, ApiError, ErrorCode, error_body
from common.ids import uuid4_str

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("agentlink.errors")

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_JSON_HEADERS = [(b"content-type", b"application/json")]


def request_id_from_headers(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            if _SANE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid4_str()


def request_id_of(scope: Scope) -> str:
    state = scope.get("state") or {}
    request_id = state.get("request_id")
    return request_id if isinstance(request_id, str) else uuid4_str()


async def send_error(
    send: Send,
    code: ErrorCode,
    request_id: str,
    message: str | None = None,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> None:
    body = error_body(code, message, request_id, details)
    raw_headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    raw_headers.append((b"x-request-id", request_id.encode()))
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": HTTP_STATUS[code], "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _add_request_id(message: Message, id_header: tuple[bytes, bytes]) -> None:
    headers = list(message.get("headers", ()))
    for name, _ in headers:  # a loop, not any() over a generator: on every response
        if name.lower() == b"x-request-id":
            break
    else:
        headers.append(id_header)
    message["headers"] = headers


def _new_request_id(scope: Scope) -> tuple[bytes, bytes]:
    """The request's id, put in `scope["state"]`; returns its response header."""
    request_id = request_id_from_headers(scope["headers"])
    scope.setdefault("state", {})["request_id"] = request_id
    return (b"x-request-id", request_id.encode())


async def _answer_error(scope: Scope, send: Send, error: Exception) -> None:
    """The one place an exception becomes a response (see the module docstring)."""
    request_id = request_id_of(scope)
    if isinstance(error, ApiError):
        await send_error(
            send, error.code, request_id, error.message,
            details=error.details, headers=error.headers,
        )  # fmt: skip
        return
    logger.exception("unhandled error", extra={"request_id": request_id})
    await send_error(send, ErrorCode.INTERNAL, request_id)


class _Middleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app


class RequestIdMiddleware(_Middleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        id_header = _new_request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                _add_request_id(message, id_header)
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _call_enveloped(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send,
    id_header: tuple[bytes, bytes] | None,
) -> None:  # fmt: skip
    """Run `app`; an exception before the response started is answered in the envelope (after
    it, a stream broke midway: the client has its status, nothing more is sent). With
    `id_header`, every response carries the request id."""
    started = False

    async def send_tracked(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
            if id_header is not None:
                _add_request_id(message, id_header)
        await send(message)

    try:
        await app(scope, receive, send_tracked)
    except ClientDisconnected:
        return
    except Exception as error:
        if not started:
            await _answer_error(scope, send, error)


class EnvelopeMiddleware(_Middleware):
    """`RequestIdMiddleware` around `ErrorEnvelopeMiddleware`, as one layer: one wrapper
    around `send` (each message of a stream passes it) instead of two."""

    with_request_id = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        id_header = _new_request_id(scope) if self.with_request_id else None
        await _call_enveloped(self.app, scope, receive, send, id_header)


class ErrorEnvelopeMiddleware(EnvelopeMiddleware):
    """Only the error envelope, for an app whose request id comes from an outer
    `RequestIdMiddleware` (the control plane's metrics and CORS sit between them)."""

    with_request_id = False


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing (413 `41301`) anything over `limit` bytes.

    A declared Content-Length over the limit is refused before reading a byte.
    """
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Invalid Content-Length.") from None
            if declared > limit:
                raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, details={"limit_bytes": limit})
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, details={"limit_bytes": limit})
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ClientDisconnected(Exception):
    """The client went away before we finished reading its request."""
