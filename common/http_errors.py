"""Starlette's own HTTP errors (unknown route, wrong method) as `ApiError`s.

Starlette's router raises `HTTPException` and would answer it in plain text; this handler
raises the matching `ApiError` instead, so the one error translator
(`common.asgi.ErrorEnvelopeMiddleware`) answers it in the envelope like any other error.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from common.errors import ApiError, ErrorCode

_CODE_FOR_STATUS = {
    400: ErrorCode.INVALID_REQUEST,
    404: ErrorCode.ROUTE_NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


async def http_exception_as_api_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = _CODE_FOR_STATUS.get(
        status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_REQUEST
    )
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    raise ApiError(code, headers=headers) from None


def envelope_exception_handlers() -> dict[Any, Any]:
    """Starlette `exception_handlers` for both apps: its HTTP errors become `ApiError`s."""
    return {HTTPException: http_exception_as_api_error}
