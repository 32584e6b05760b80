"""The bounded log of received requests behind ``GET``/``DELETE /_mock/requests``."""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson

from mock_provider.asgi import Scope

_EXACT = frozenset((b"authorization", b"traceparent", b"tracestate"))


def is_recorded_header(name: bytes) -> bool:
    """Headers worth asserting on: ``x-*``, ``anthropic-*``, auth and trace context."""
    return name.startswith((b"x-", b"anthropic-")) or name in _EXACT


class RequestLog:
    """The most recent request bodies, oldest first. Appending is one deque append."""

    __slots__ = ("_entries",)

    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)

    def record(self, scope: Scope, headers: dict[str, str], body: Any) -> None:
        self._entries.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "headers": headers,
                "body": body,
            }
        )

    def dump(self) -> bytes:
        return orjson.dumps(list(self._entries))

    def clear(self) -> None:
        self._entries.clear()
