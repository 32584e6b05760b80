"""OpenTelemetry spans for the gateway call and the provider call (GenAI semantic conventions).

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then the hot path pays one attribute check
per call and nothing else (no tracer, no span objects, no context). The client's W3C
`traceparent` is still passed through to the provider unchanged, so traces that the client
started continue at the provider even when the gateway itself exports nothing.

What spans carry: operation, provider, requested model, token usage, finish reasons, the
agent id and version as `gen_ai.prompt.name`/`gen_ai.prompt.version`, and our request id.
What they never carry: the opt-in content attributes (`gen_ai.input.messages`,
`gen_ai.output.messages`, `gen_ai.system_instructions`) — those would export the creator's
prompt — nor API keys or user ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")

# OpenTelemetry's GenAI names for the providers we speak to.
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini"}


def trace_headers_from(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The client's W3C trace context headers, if it sent any."""
    found: dict[str, str] = {}
    for name, value in headers:
        if name in _TRACE_HEADERS:
            found[name.decode()] = value.decode("latin-1")
    return found


@dataclass(slots=True)
class CallSpans:
    """The two spans of one traced call."""

    server: Span
    client: Span | None = None


class Tracing:
    """Built once at start-up. `enabled` False means: do nothing, cost nothing."""

    def __init__(self, processor: SpanProcessor | None = None) -> None:
        self.enabled = processor is not None
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if processor is not None:
            resource = Resource.create({"service.name": "agentlink-gateway"})
            self._provider = TracerProvider(resource=resource)
            self._provider.add_span_processor(processor)
            self._tracer = self._provider.get_tracer("agentlink.gateway")

    @classmethod
    def from_env(cls) -> Tracing:
        if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return cls(None)
        return cls(BatchSpanProcessor(OTLPSpanExporter()))

    @classmethod
    def with_exporter(cls, exporter: SpanExporter) -> Tracing:
        return cls(SimpleSpanProcessor(exporter))

    def start_call(
        self, route: str, client_trace_headers: dict[str, str], request_id: str
    ) -> CallSpans:
        assert self._tracer is not None
        parent = _PROPAGATOR.extract(client_trace_headers) if client_trace_headers else None
        span = self._tracer.start_span(
            f"POST {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "http.route": route,
                        "agentlink.request_id": request_id},
        )  # fmt: skip
        return CallSpans(server=span)

    def start_provider_call(
        self, spans: CallSpans, provider: str, model: str, agent_id: str, version: int
    ) -> dict[str, str]:
        """Start the provider span; returns the trace headers to send to the provider."""
        assert self._tracer is not None
        parent = trace.set_span_in_context(spans.server)
        spans.client = self._tracer.start_span(
            f"chat {model}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
                "gen_ai.request.model": model,
                "gen_ai.prompt.name": agent_id,
                "gen_ai.prompt.version": str(version),
            },
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(spans.client))
        return carrier

    def end_provider_call(
        self,
        spans: CallSpans,
        *,
        input_tokens: int,
        output_tokens: int,
        finish_reasons: tuple[str, ...],
        error_type: str | None,
    ) -> None:
        span = spans.client
        if span is None:
            return
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", finish_reasons)
        if error_type:
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        spans.client = None

    def end_call(self, spans: CallSpans, *, status: int, error_code: str | None) -> None:
        if spans.client is not None:  # the provider call did not finish normally
            self.end_provider_call(spans, input_tokens=0, output_tokens=0, finish_reasons=(),
                                   error_type="cancelled")  # fmt: skip
        spans.server.set_attribute("http.response.status_code", status)
        if error_code:
            spans.server.set_attribute("error.type", error_code)
            if status >= 500:
                spans.server.set_status(Status(StatusCode.ERROR))
        spans.server.end()

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


__all__ = ["CallSpans", "Tracing", "trace_headers_from"]
