"""Serving the mock provider with uvicorn (uvloop + httptools, no access log)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

APP_FACTORY = "mock_provider.app:create_app"


class AbortedStreamFilter(logging.Filter):
    """Drop uvicorn's error line for a response left incomplete: ``break_after`` does that on
    purpose, and chaos load tests would otherwise flood the log with it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "ASGI callable returned without completing response."


def log_config() -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"aborted_stream": {"()": f"{__name__}.AbortedStreamFilter"}}
    config["loggers"]["uvicorn.error"]["filters"] = ["aborted_stream"]
    return config


def run(host: str = "127.0.0.1", port: int = 9100, workers: int = 1) -> None:
    """Serve ``create_app()`` until interrupted (each worker has its own request log)."""
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        log_config=log_config(),
        server_header=False,
        # A stalled stream (`stall_after`) must not hold a shutdown for its whole stall.
        timeout_graceful_shutdown=1,
    )
