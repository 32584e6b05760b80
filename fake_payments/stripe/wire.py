"""Stripe's wire format: form-encoded requests with bracketed keys, JSON objects back, the
error envelope, object ids, and the API-key and idempotency rules every endpoint shares."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

API_VERSION = "2026-10-28.endive"
_KEY_PART = re.compile(r"([^\[\]]+)|\[([^\[\]]*)\]")

Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


class StripeError(Exception):
    def __init__(
        self, status: int, message: str, *, type_: str = "invalid_request_error",
        code: str | None = None, param: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status, message, type_, code, param,
        )  # fmt: skip

    def response(self) -> Response:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return json(self.status, {"error": error})


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_urlsafe(18).replace('-', 'a').replace('_', 'b')}"


def now() -> int:
    return int(time.time())


def json(status: int, body: Any) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json",
        headers={"Request-Id": new_id("req"), "Stripe-Version": API_VERSION},
    )  # fmt: skip


def decode_form(raw: bytes) -> dict[str, Any]:
    """`a[b][0][c]=v` pairs as nested dicts and lists (what stripe-python sends)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
        parts = [named or index for named, index in _KEY_PART.findall(key)]
        if not parts:
            continue
        node: dict[str, Any] = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    decoded: dict[str, Any] = _lists(root)
    return decoded


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def integer(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing",
                              param=name)  # fmt: skip
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer",
                          param=name) from None  # fmt: skip


def text(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing",
                              param=name)  # fmt: skip
        return None
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {name}", param=name)
    return value


def not_found(kind: str, object_id: str) -> StripeError:
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing",
                       param="id")  # fmt: skip
