"""OpenTelemetry spans: GenAI semantic conventions, W3C propagation both ways, and never the
creator's prompt or message content."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.tracing import Tracing
from tests.gateway.helpers import chat, make_caller
from tests.processes import serve_gateway

PROMPT = "TRACING-SECRET-PROMPT: never export me"
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def traced_gateway(gateway_env: dict[str, str]) -> Iterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    with serve_gateway(gateway_env, tracing=Tracing.with_exporter(exporter)) as url:
        yield url, exporter


async def finished_spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """The call's spans by kind. The server span ends after the last byte went out (the
    commit and the access log come after it), so give it a moment."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        spans = {span.kind.name: span for span in exporter.get_finished_spans()}
        if {"SERVER", "CLIENT"} <= spans.keys():
            return spans
        await asyncio.sleep(0.01)
    raise AssertionError(f"spans did not finish: {exporter.get_finished_spans()}")


async def _recorded_traceparent(mock_provider_url: str, marker: str) -> str:
    async with httpx.AsyncClient() as client:
        recorded = (await client.get(f"{mock_provider_url}/_mock/requests")).json()
    for entry in reversed(recorded):
        if entry["body"]["messages"][-1]["content"] == marker:
            value: str = entry["headers"]["traceparent"]
            return value
    raise AssertionError("the mock did not see the call")


@pytest.mark.parametrize("stream", [False, True])
async def test_spans_follow_genai_conventions_and_carry_no_content(
    traced_gateway: tuple[str, InMemorySpanExporter],
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    stream: bool,
) -> None:
    url, exporter = traced_gateway
    exporter.clear()
    caller = await make_caller(db_pool, system_prompt=PROMPT)
    agent, key = caller.agent, caller.key
    marker = f"trace me {stream}"
    async with httpx.AsyncClient() as client:
        response = await chat(
            client, url, caller, marker, stream=stream,
            headers={"traceparent": TRACEPARENT, "X-Request-ID": f"trace-{stream}"},
        )  # fmt: skip
    assert response.status_code == 200

    spans = await finished_spans(exporter)
    server, provider_span = spans["SERVER"], spans["CLIENT"]
    assert server.name == "POST /proxy/v1/agents/{agent_id}/chat"
    assert server.context.trace_id == int(CLIENT_TRACE_ID, 16)  # continues the client's trace
    assert server.attributes["agentlink.request_id"] == f"trace-{stream}"
    assert server.attributes["http.response.status_code"] == 200
    assert provider_span.parent is not None
    assert provider_span.parent.span_id == server.context.span_id
    assert provider_span.name == "chat mock-model"
    attributes = dict(provider_span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "mock-model"
    assert attributes["gen_ai.prompt.name"] == agent.agent_id
    assert attributes["gen_ai.prompt.version"] == "1"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    for span in (server, provider_span):
        for name, value in (span.attributes or {}).items():
            assert not name.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system"))
            assert PROMPT not in str(value)
            assert marker not in str(value)
            assert key.plaintext not in str(value)

    # The provider request continues the trace from the provider span.
    sent = await _recorded_traceparent(mock_provider_url, marker)
    _, trace_id, parent_id, _ = sent.split("-")
    assert int(trace_id, 16) == int(CLIENT_TRACE_ID, 16)
    assert int(parent_id, 16) == provider_span.context.span_id


async def test_without_an_exporter_the_clients_traceparent_passes_through(
    gateway_url: str, mock_provider_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await chat(
            client, gateway_url, caller, "untraced call", headers={"traceparent": TRACEPARENT}
        )
    assert response.status_code == 200
    assert await _recorded_traceparent(mock_provider_url, "untraced call") == TRACEPARENT


async def test_a_failed_provider_call_marks_both_spans(
    traced_gateway: tuple[str, InMemorySpanExporter], db_pool: asyncpg.Pool
) -> None:
    url, exporter = traced_gateway
    exporter.clear()
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await chat(client, url, caller, "[[mock status=500]]")
    assert response.status_code == 503
    spans = await finished_spans(exporter)
    assert spans["CLIENT"].status.status_code.name == "ERROR"
    assert spans["SERVER"].attributes["error.type"] == "50301"
    assert spans["SERVER"].status.status_code.name == "ERROR"
