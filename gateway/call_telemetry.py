"""What one call reports about itself: request metrics, its trace spans and the access log line.

Labels and log fields are bounded and secret-free: route template, status class, agent id,
request id, error code. Never the key, the prompt or the messages.
"""

from __future__ import annotations

import logging
import time

from common.asgi import Scope
from common.errors import ApiError, ErrorCode
from gateway.call_result import CallResult
from gateway.state import GatewayState
from gateway.tracing import CallSpans, trace_headers_from

logger = logging.getLogger("agentlink.access")

# Refusals counted by admission verdict (the other errors are not admission's).
_REFUSALS = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.QUOTA_EXHAUSTED,
                       ErrorCode.INVALID_API_KEY, ErrorCode.AGENT_NOT_FOUND,
                       ErrorCode.FORBIDDEN})  # fmt: skip


class CallTelemetry:
    """Started when a call arrives, `finish`ed once however it ends."""

    __slots__ = ("_agent_id", "_route", "_state", "billable", "client_trace", "error_code",
                 "http_status", "request_id", "spans", "started", "stream")  # fmt: skip

    def __init__(self, state: GatewayState, route: str, scope: Scope, agent_id: str | None) -> None:
        self.started = time.perf_counter()
        self._state = state
        self._route = route
        self._agent_id = agent_id
        self.request_id: str = scope["state"]["request_id"]
        self.client_trace = trace_headers_from(scope["headers"])  # W3C trace context
        tracing = state.tracing
        self.spans: CallSpans | None = (
            tracing.start_call(route, self.client_trace, self.request_id)
            if tracing.enabled
            else None
        )
        self.stream = False
        self.http_status = 500  # until the call says otherwise
        self.error_code = ""
        self.billable = False
        state.metrics.calls_in_flight += 1

    def admitted(self) -> None:
        metrics = self._state.metrics
        metrics.child(metrics.admissions, "ok").inc()

    def ended(self, result: CallResult) -> None:
        self.http_status, self.error_code = result.http_status, result.error_code
        self.billable = result.billable

    def client_left_early(self) -> None:
        """The client went away before its request was read: a 499 like any client that
        leaves, never a server error (else anyone could inflate the 5xx rate alerts read)."""
        self.http_status, self.error_code = 499, "client_disconnected"

    def refused(self, error: ApiError) -> None:
        self.http_status, self.error_code = error.status, error.code.value
        if error.code in _REFUSALS:
            self._state.metrics.admissions.labels(error.code.name.lower()).inc()

    def provider_trace_headers(self, provider: str, model: str, agent_id: str,
                               version: int) -> dict[str, str]:  # fmt: skip
        """The trace headers for one provider attempt (its span starts here when tracing)."""
        if self.spans is None:
            return self.client_trace
        return self._state.tracing.start_provider_call(
            self.spans, provider, model, agent_id, version
        )

    def provider_ended(self, result: CallResult | None, error_code: str = "") -> None:
        """End the attempt's span: `result` when it answered, else the error's code."""
        if self.spans is None:
            return
        usage = result.usage if result is not None else None
        if result is not None:
            error = None if result.status == "success" else (result.error_code or result.status)
        else:
            error = error_code or "error"
        self._state.tracing.end_provider_call(
            self.spans,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            finish_reasons=usage.finish_reasons if usage else (),
            error_type=error,
        )

    def finish(self) -> None:
        state = self._state
        metrics = state.metrics
        metrics.calls_in_flight -= 1
        if self.spans is not None:
            state.tracing.end_call(self.spans, status=self.http_status, error_code=self.error_code)
        elapsed = time.perf_counter() - self.started
        metrics.child(metrics.requests, self._route, f"{self.http_status // 100}xx").inc()
        metrics.child(
            metrics.request_seconds, self._route, "true" if self.stream else "false"
        ).observe(elapsed)
        if state.settings.access_log:
            logger.info(
                "call",
                extra={
                    "request_id": self.request_id,
                    "route": self._route,
                    "agent_id": self._agent_id,
                    "status": self.http_status,
                    "latency_ms": round(elapsed * 1000, 2),
                    "billable": self.billable,
                    "error_code": self.error_code or None,
                },
            )
