"""What tracing costs the hot path. Off (no OTLP endpoint): one scan of the request headers
for `traceparent` and one attribute check per call — compare it with the ~200 µs of CPU a
whole proxied call costs (loadtests/README.md). On: two spans per call, for contrast."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.tracing import Tracing, trace_headers_from

# What a typical SDK request carries.
HEADERS = [
    (b"host", b"gateway.agentlink.test"),
    (b"user-agent", b"AsyncOpenAI/Python 3.51.0"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer ak_0123456789abcdefghijABCDEFGHIJKL"),
    (b"x-stainless-lang", b"python"),
    (b"x-stainless-package-version", b"3.51.0"),
    (b"x-stainless-runtime", b"CPython"),
    (b"content-length", b"182"),
    (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
]


def disabled_path(tracing: Tracing) -> dict[str, str]:
    """Exactly what ChatEndpoint does per call when tracing is off."""
    client_trace = trace_headers_from(HEADERS)
    if tracing.enabled:
        raise AssertionError("tracing should be off")
    return client_trace


def enabled_path(tracing: Tracing) -> None:
    spans = tracing.start_call("/proxy/v1/agents/{agent_id}/chat", trace_headers_from(HEADERS), "r")
    tracing.start_provider_call(spans, "openai", "gpt-4o-mini", "agent-id", 3)
    tracing.end_provider_call(spans, input_tokens=10, output_tokens=20, finish_reasons=("stop",),
                              error_type=None)  # fmt: skip
    tracing.end_call(spans, status=200, error_code=None)


def test_tracing_off_costs_one_header_scan(benchmark: Any) -> None:
    tracing = Tracing(None)
    result = benchmark(disabled_path, tracing)
    assert result == {"traceparent": HEADERS[-1][1].decode()}


def test_tracing_on_for_contrast(benchmark: Any) -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_exporter(exporter)
    benchmark(enabled_path, tracing)
    assert len(exporter.get_finished_spans()) >= 2
    tracing.shutdown()
