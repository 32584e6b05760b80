"""Structured JSON logs, one object per line, carrying the request id when there is one.

Callers pass context with `extra={...}`; only the fields in `_CONTEXT_FIELDS` are emitted, so a
stray `extra` can never smuggle a key or a prompt into the log stream.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_CONTEXT_FIELDS = (
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "latency_ms",
    "agent_id",
    "agent_version",
    "provider",
    "model",
    "verdict",
    "error_code",
    "billable",
    "event",
    "count",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO: noise, and CPU on the hot path.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
