"""JSON-RPC 2.0 framing for MCP over Streamable HTTP, protocol versions and sessions.

Sessions cost no storage: a session id is a random nonce with a tag binding it to the API
key's hash, so any gateway instance can check that a request belongs to the session its key
opened, and a session id alone (without the key every request carries) opens nothing. A
session ends when the client stops using it; DELETE is answered 405 as the specification
allows for servers that do not let clients end sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from common.errors import ApiError

# Newest first: the answer to an `initialize` offering a version we do not speak.
SUPPORTED_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server-defined codes (the -32000..-32099 range): the caller's key, and our own storage or
# request-size limits, which are not about the JSON-RPC message itself.
UNAUTHORIZED = -32001
SERVER_UNAVAILABLE = -32002
REQUEST_TOO_LARGE = -32003

RequestId = str | int


@dataclass(frozen=True, slots=True)
class Message:
    """One client message: a request (has an id), a notification, or a response to us."""

    method: str | None
    id: RequestId | None
    params: dict[str, Any]

    @property
    def is_request(self) -> bool:
        return self.id is not None and self.method is not None


class RpcError(Exception):
    """A JSON-RPC error answer. `http_status` is the HTTP status it goes with."""

    def __init__(
        self, code: int, message: str, *, data: Any = None, http_status: int = 200
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status


_STATUS_RPC_CODES = {401: UNAUTHORIZED, 413: REQUEST_TOO_LARGE, 503: SERVER_UNAVAILABLE}


def rpc_error_of(error: ApiError) -> RpcError:
    """One of our errors, before any method ran (the key, the body): its status, its code in
    `data`, and its message."""
    status = error.status
    rpc_code = _STATUS_RPC_CODES.get(status, INVALID_REQUEST if status < 500 else INTERNAL_ERROR)
    data: dict[str, Any] = {"code": error.code.value, "status": status}
    if error.details is not None:
        data["details"] = error.details
    return RpcError(rpc_code, error.message, data=data, http_status=status)


def parse_message(body: bytes) -> Message:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "The body is not valid JSON.", http_status=400) from None
    if isinstance(data, list):
        raise RpcError(
            INVALID_REQUEST, "Send one JSON-RPC message per request (no batches).", http_status=400
        )
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "Not a JSON-RPC 2.0 message.", http_status=400)
    message_id = data.get("id")
    if message_id is not None and (
        isinstance(message_id, bool) or not isinstance(message_id, str | int)
    ):
        raise RpcError(INVALID_REQUEST, "The id must be a string or an integer.", http_status=400)
    method = data.get("method")
    if method is None:
        if message_id is None or ("result" not in data and "error" not in data):
            raise RpcError(INVALID_REQUEST, "A message needs a method.", http_status=400)
        return Message(None, message_id, {})  # a response to a request of ours: none exist
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "The method must be a string.", http_status=400)
    params = data.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "The params must be an object.", http_status=400)
    return Message(method, message_id, params)


def result_body(message_id: RequestId, result: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": message_id, "result": result})


def notification_body(method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def error_body(message_id: RequestId | None, error: RpcError) -> bytes:
    payload: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        payload["data"] = error.data
    return orjson.dumps({"jsonrpc": "2.0", "id": message_id, "error": payload})


def negotiated_version(offered: object) -> str:
    """The version an `initialize` offering `offered` gets: the same when we speak it, else
    our newest (the client then decides whether it can go on)."""
    return offered if offered in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[0]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _tag(nonce: str, key_hash: str) -> str:
    return _b64(
        hashlib.sha256(f"agentlink-mcp-session\0{nonce}\0{key_hash}".encode()).digest()[:16]
    )


def new_session_id(key_hash: str) -> str:
    nonce = _b64(secrets.token_bytes(16))
    return f"{nonce}.{_tag(nonce, key_hash)}"


def session_belongs_to(session_id: str, key_hash: str) -> bool:
    nonce, dot, tag = session_id.partition(".")
    return bool(dot) and len(session_id) <= 64 and hmac.compare_digest(tag, _tag(nonce, key_hash))
