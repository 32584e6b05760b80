"""Starlette's own HTTP errors (unknown route, wrong method) in our envelope."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from common.asgi import request_id_of
from common.errors import HTTP_STATUS, ApiError, ErrorCode, error_body

logger = logging.getLogger("agentlink.errors")

_CODE_FOR_STATUS = {
    400: ErrorCode.INVALID_REQUEST,
    404: ErrorCode.ROUTE_NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


async def http_exception_as_envelope(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = _CODE_FOR_STATUS.get(
        status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_REQUEST
    )
    body = error_body(code, None, request_id_of(request.scope))
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return Response(
        body, status_code=HTTP_STATUS[code], headers=headers, media_type="application/json"
    )


async def api_error_as_envelope(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):
        return await unexpected_error_as_envelope(request, exc)
    body = error_body(exc.code, exc.message, request_id_of(request.scope), exc.details)
    return Response(
        body, status_code=exc.status, headers=exc.headers, media_type="application/json"
    )


async def unexpected_error_as_envelope(request: Request, exc: Exception) -> Response:
    request_id = request_id_of(request.scope)
    logger.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    body = error_body(ErrorCode.INTERNAL, None, request_id)
    return Response(body, status_code=500, media_type="application/json")


def envelope_exception_handlers() -> dict[Any, Any]:
    """Starlette `exception_handlers` that answer every error in the envelope."""
    return {
        HTTPException: http_exception_as_envelope,
        ApiError: api_error_as_envelope,
        Exception: unexpected_error_as_envelope,
    }
