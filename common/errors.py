"""The error envelope both apps answer with, and the code table behind it.

Every error is `{"error": {"code", "message", "details"?}, "request_id"}` with the HTTP status
of its code. Codes come from the seed design; the ones marked "added" fill gaps the seed left
(body too large, conflicts, our own storage being down).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson


class ErrorCode(StrEnum):
    INVALID_REQUEST = "40001"
    VALIDATION_FAILED = "40002"
    INVALID_CREDENTIALS = "40101"
    TOKEN_EXPIRED = "40102"  # noqa: S105 - an error code, not a secret
    INVALID_API_KEY = "40103"
    FORBIDDEN = "40301"
    AGENT_NOT_OWNED = "40302"
    AGENT_NOT_FOUND = "40401"
    USER_NOT_FOUND = "40402"
    ROUTE_NOT_FOUND = "40403"  # added
    RESOURCE_NOT_FOUND = "40404"  # added: a key, review, flag... that does not exist
    METHOD_NOT_ALLOWED = "40501"  # added
    CONFLICT = "40901"  # added: e.g. duplicate email
    REQUEST_TIMEOUT = "40801"  # added: the request was not sent in time (common/http_server.py)
    PAYLOAD_TOO_LARGE = "41301"  # added
    UNSUPPORTED_MEDIA_TYPE = "41501"  # added: an upload of a type we do not take
    QUOTA_EXHAUSTED = "42901"
    RATE_LIMITED = "42902"
    HEADERS_TOO_LARGE = "43101"  # added: too many or too large header fields
    INTERNAL = "50001"
    UPSTREAM_UNAVAILABLE = "50301"
    STORAGE_UNAVAILABLE = "50302"  # added: Redis/Postgres down, we fail closed
    MAINTENANCE = "50303"  # added: the maintenance_mode flag is on
    SERVER_BUSY = "50304"  # added: the worker's connection cap is reached
    UPSTREAM_TIMEOUT = "50401"


HTTP_STATUS: dict[ErrorCode, int] = {code: int(code.value[:3]) for code in ErrorCode}

DEFAULT_MESSAGE: dict[ErrorCode, str] = {
    ErrorCode.INVALID_REQUEST: "The request is malformed.",
    ErrorCode.VALIDATION_FAILED: "The request failed validation.",
    ErrorCode.INVALID_CREDENTIALS: "Invalid credentials.",
    ErrorCode.TOKEN_EXPIRED: "The access token has expired.",
    ErrorCode.INVALID_API_KEY: "The API key is missing, malformed, unknown or revoked.",
    ErrorCode.FORBIDDEN: "You are not allowed to do this.",
    ErrorCode.AGENT_NOT_OWNED: "This agent belongs to another creator.",
    ErrorCode.AGENT_NOT_FOUND: "The agent does not exist or is not active.",
    ErrorCode.USER_NOT_FOUND: "The user does not exist.",
    ErrorCode.ROUTE_NOT_FOUND: "No such route.",
    ErrorCode.RESOURCE_NOT_FOUND: "No such resource.",
    ErrorCode.METHOD_NOT_ALLOWED: "Method not allowed on this route.",
    ErrorCode.CONFLICT: "The resource already exists or changed concurrently.",
    ErrorCode.REQUEST_TIMEOUT: "The request was not received in time.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body is too large.",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "This type of file is not supported.",
    ErrorCode.QUOTA_EXHAUSTED: "The quota is exhausted.",
    ErrorCode.RATE_LIMITED: "Rate limit exceeded.",
    ErrorCode.HEADERS_TOO_LARGE: "The request's header fields are too many or too large.",
    ErrorCode.INTERNAL: "Internal error.",
    ErrorCode.UPSTREAM_UNAVAILABLE: "The model provider is unavailable.",
    ErrorCode.STORAGE_UNAVAILABLE: "A storage dependency is unavailable; try again shortly.",
    ErrorCode.MAINTENANCE: "AgentLink is down for maintenance; try again after Retry-After.",
    ErrorCode.SERVER_BUSY: "The server is at its connection limit; try again shortly.",
    ErrorCode.UPSTREAM_TIMEOUT: "The model provider timed out.",
}


class ApiError(Exception):
    """An error that becomes an envelope response. Raise it anywhere below a handler."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGE[code]
        self.details = details
        self.headers = headers or {}
        super().__init__(f"{code.value}: {self.message}")

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]


def error_envelope_schema() -> dict[str, Any]:
    """The JSON Schema of what `error_body` writes (both apps' OpenAPI documents)."""
    return {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[0-9]{5}$"},
                    "message": {"type": "string"},
                    "details": {},
                },
            },
            "request_id": {"type": "string"},
        },
    }


def error_body(code: ErrorCode, message: str | None, request_id: str, details: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code.value, "message": message or DEFAULT_MESSAGE[code]}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error, "request_id": request_id})
