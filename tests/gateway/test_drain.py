"""Graceful shutdown (gateway/drain.py): after SIGTERM the gateway is unready at once, calls in
flight finish and are billed, streams still open at SHUTDOWN_DRAIN_S end with an in-band
`50303` and are not billed, and every call has exactly one usage event and call_logs row.

First a gateway served in this process, whose drain the test starts by hand (to look at each
answer closely), then the real thing: uvicorn processes, one worker and two, sent SIGTERM
during 20 streams and a few JSON calls.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import pytest
import redis.asyncio as redis_asyncio

from control_plane.usage_ingest import ingest_once
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from tests.gateway.helpers import (
    Caller,
    assert_error,
    chat_url,
    gateway_process,
    make_caller,
    mock_requests_containing,
    quota_units,
    usage_events,
    wait_for_events,
)
from tests.support import serve

DRAIN_S = 1.5
LONG_STREAM = "[[mock chunks=400 chunk_delay_ms=50]]"  # 20 s: outlives any drain here
SHORT_STREAM = "[[mock chunks=8 chunk_delay_ms=100]]"  # under a second


class StateSpy:
    """The gateway app, passing through; keeps the lifespan's state and the server's loop so
    the test can start the drain as the signal handler would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.state: GatewayState | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            self.loop = asyncio.get_running_loop()
        elif self.state is None:
            self.state = scope["state"]["gateway"]
        await self.app(scope, receive, send)

    def begin_drain(self) -> None:
        assert self.loop is not None
        assert self.state is not None
        self.loop.call_soon_threadsafe(self.state.drain.begin)


@pytest.fixture
def drained_gateway(gateway_env: dict[str, str]) -> Iterator[tuple[str, StateSpy]]:
    env = {**gateway_env, "SHUTDOWN_DRAIN_S": str(DRAIN_S), "STREAM_FIRST_BYTE_TIMEOUT_S": "30",
           "UPSTREAM_TIMEOUT_S": "30"}  # fmt: skip
    spy = StateSpy(create_app(GatewaySettings.from_env(env)))
    with serve(spy) as url:
        yield url, spy


def messages(text: str) -> Any:
    return [{"role": "user", "content": text}]


def agent_url(url: str, caller: Caller) -> str:
    return f"{url}/proxy/v1/agents/{caller.agent.agent_id}"


async def test_a_drain_finishes_calls_in_flight_and_cuts_streams_left_at_its_deadline(
    drained_gateway: tuple[str, StateSpy],
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    url, spy = drained_gateway
    caller = await make_caller(db_pool, quota=20, tier="paid", trials_used=3)
    key = caller.key.plaintext
    chat = openai.AsyncOpenAI(base_url=agent_url(url, caller), api_key=key, max_retries=0)
    messages_api = anthropic.AsyncAnthropic(
        base_url=agent_url(url, caller), api_key=key, max_retries=0
    )
    async with chat, messages_api, httpx.AsyncClient(timeout=30) as raw:
        long_chat = await chat.chat.completions.create(
            model="x", messages=messages("long " + LONG_STREAM), stream=True,
            extra_headers={"X-Request-ID": "drain-long-chat"},
        )  # fmt: skip
        long_messages = await messages_api.messages.create(
            model="x", max_tokens=100, messages=messages("long " + LONG_STREAM), stream=True,
            extra_headers={"X-Request-ID": "drain-long-messages"},
        )  # fmt: skip
        short_chat = await chat.chat.completions.create(
            model="x", messages=messages("short " + SHORT_STREAM), stream=True,
            extra_headers={"X-Request-ID": "drain-short"},
        )  # fmt: skip
        first_chunks = [await anext(aiter(s)) for s in (long_chat, long_messages, short_chat)]
        assert len(first_chunks) == 3  # all three answering: the provider's 2xx is in
        json_call = asyncio.create_task(
            chat.chat.completions.create(
                model="x", messages=messages("drain-json [[mock latency_ms=1000]]"),
                extra_headers={"X-Request-ID": "drain-json"},
            )
        )  # fmt: skip
        await until_the_mock_has(raw, mock_provider_url, "drain-json")

        spy.begin_drain()
        ready = await raw.get(f"{url}/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        drained_at = time.monotonic()

        # In flight: the JSON call and the short stream finish normally.
        completion = await json_call
        assert completion.choices[0].message.content
        short_text = "".join([c.choices[0].delta.content or "" async for c in short_chat])
        assert short_text
        # Still open at the deadline: each SDK sees the in-band error, with our code.
        with pytest.raises(openai.APIError) as chat_cut:
            async for _ in long_chat:
                pass
        assert time.monotonic() - drained_at >= DRAIN_S * 0.9  # cut by the drain, not before
        assert isinstance(chat_cut.value.body, dict)
        assert chat_cut.value.body["code"] == "50303"
        with pytest.raises(anthropic.APIStatusError) as messages_cut:
            async for _ in long_messages:
                pass
        body = messages_cut.value.body
        assert isinstance(body, dict)
        assert (body["error"]["type"], body["error"]["code"]) == ("overloaded_error", "50303")

        # After the cut a call is refused before admission: nothing reserved, nothing logged.
        refused = await raw.post(
            chat_url(url, caller.agent.agent_id),
            headers={"X-AgentLink-Key": key},
            json={"messages": messages("late"), "stream": True},
        )
        assert_error(refused, 503, "50303")
        assert refused.headers["retry-after"] == "1"

    events = {e["request_id"]: e for e in await wait_for_events(redis, caller, 4)}
    assert len(events) == 4, events
    for billed in ("drain-json", "drain-short"):
        assert (events[billed]["billable"], events[billed]["status"]) == ("1", "success")
    for cut in ("drain-long-chat", "drain-long-messages"):
        assert (events[cut]["billable"], events[cut]["units"]) == ("0", "0")
        assert (events[cut]["status"], events[cut]["error_code"]) == ("error", "50303")
    assert await quota_units(redis, caller) == 20 - 2
    await assert_call_logs(redis, db_pool, caller, rows=4, billed=2)


async def test_a_stream_the_provider_has_not_answered_at_the_cut_gets_a_503_to_retry(
    drained_gateway: tuple[str, StateSpy],
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:
    url, spy = drained_gateway
    caller = await make_caller(db_pool, quota=5, tier="paid", trials_used=3)
    async with httpx.AsyncClient(timeout=30) as client:
        waiting = asyncio.create_task(
            client.post(
                chat_url(url, caller.agent.agent_id),
                headers={"X-AgentLink-Key": caller.key.plaintext, "X-Request-ID": "drain-wait"},
                json={"messages": messages("drain-wait [[mock latency_ms=20000]]"), "stream": True},
            )
        )
        await until_the_mock_has(client, mock_provider_url, "drain-wait")
        spy.begin_drain()
        response = await waiting
    assert_error(response, 503, "50303")
    assert response.headers["retry-after"] == "1"
    [event] = await wait_for_events(redis, caller, 1)
    assert (event["billable"], event["status"], event["error_code"]) == ("0", "error", "50303")
    assert await quota_units(redis, caller) == 5


async def until_the_mock_has(
    client: httpx.AsyncClient, mock_url: str, marker: str, count: int = 1
) -> None:
    """Wait until `count` calls marked `marker` reached the provider: they are admitted."""
    deadline = time.monotonic() + 15
    while (seen := await mock_requests_containing(client, mock_url, marker)) < count:
        assert time.monotonic() < deadline, f"only {seen} of {count} {marker} calls arrived"
        await asyncio.sleep(0.02)


async def assert_call_logs(
    redis: redis_asyncio.Redis, db: asyncpg.Pool, caller: Caller, *, rows: int, billed: int
) -> None:
    """The worker's ingestion turns the events into exactly `rows` call_logs rows, `billed`
    units in all: quota consumed == billable units in call_logs (the books reconcile)."""
    await ingest_once(redis, db)
    count, units, billable = await db.fetchrow(
        "SELECT count(*), coalesce(sum(units), 0), count(*) FILTER (WHERE billable)"
        " FROM call_logs WHERE user_id = $1",
        caller.developer.user_id,
    )
    assert (count, units, billable) == (rows, billed, billed)


# -- SIGTERM to real uvicorn processes -------------------------------------------------------

STREAMS = 20  # half complete within the drain, half are cut at it
JSON_CALLS = 4
PROCESS_DRAIN_S = 3.0


@dataclass
class Outcomes:
    complete: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


async def relay(stream: Any, request_id: str, outcomes: Outcomes) -> None:
    try:
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    except openai.APIError as error:
        body = error.body if isinstance(error.body, dict) else {}
        (outcomes.cut if body.get("code") == "50303" else outcomes.other).append(request_id)
        return
    (outcomes.complete if text else outcomes.other).append(request_id)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_during_20_streams_drains_and_the_books_reconcile(
    *,
    gateway_env: dict[str, str],
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    tmp_path: Path,
    workers: int,
) -> None:
    caller = await make_caller(db_pool, quota=100, tier="paid", trials_used=3)
    env = {**gateway_env, "SHUTDOWN_DRAIN_S": str(PROCESS_DRAIN_S), "LOG_LEVEL": "INFO",
           "STREAM_IDLE_TIMEOUT_S": "10", "UPSTREAM_TIMEOUT_S": "10",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}  # fmt: skip
    args = ("--workers", str(workers), "--timeout-graceful-shutdown", "20",
            "--log-level", "info", "--loop", "uvloop",
            "--http", "common.http_server:GuardedHttpProtocol")  # fmt: skip
    with gateway_process(env, tmp_path / "gateway.log", *args) as gateway:
        await gateway.wait_until_ready()
        client = openai.AsyncOpenAI(
            base_url=f"{gateway.url}/proxy/v1/agents/{caller.agent.agent_id}",
            api_key=caller.key.plaintext, max_retries=0, timeout=60,
        )  # fmt: skip
        async with client, httpx.AsyncClient(timeout=1) as probe:
            streams = []
            for index in range(STREAMS):
                shape = SHORT_STREAM if index % 2 else LONG_STREAM
                request_id = f"term-stream-{index}"
                stream = await client.chat.completions.create(
                    model="x", messages=messages(shape), stream=True,
                    extra_headers={"X-Request-ID": request_id},
                )  # fmt: skip
                streams.append((request_id, stream))
            json_calls = [
                asyncio.create_task(
                    client.chat.completions.create(
                        model="x",
                        messages=messages(f"term-json-{n} [[mock latency_ms=2000]]"),
                        extra_headers={"X-Request-ID": f"term-json-{n}"},
                    )
                )
                for n in range(JSON_CALLS)
            ]
            await until_the_mock_has(probe, mock_provider_url, "term-json", JSON_CALLS)

            gateway.process.send_signal(signal.SIGTERM)  # as Kubernetes does: to PID 1
            signalled = time.monotonic()
            outcomes = Outcomes()
            relays = [asyncio.create_task(relay(s, rid, outcomes)) for rid, s in streams]
            assert await unready_soon(probe, gateway.url), "still ready after SIGTERM"
            answers = await asyncio.gather(*json_calls)
            await asyncio.gather(*relays)
            cut_after = time.monotonic() - signalled
        returncode = await asyncio.to_thread(gateway.process.wait, 30)
        log = gateway.log()

    assert all(answer.choices[0].message.content for answer in answers)
    assert outcomes.other == [], log
    assert sorted(outcomes.complete) == sorted(f"term-stream-{i}" for i in range(1, STREAMS, 2))
    assert sorted(outcomes.cut) == sorted(f"term-stream-{i}" for i in range(0, STREAMS, 2))
    assert cut_after >= PROCESS_DRAIN_S * 0.9
    # Shut down cleanly, every worker through its lifespan, nothing cancelled by uvicorn.
    assert "timeout graceful shutdown exceeded" not in log, log
    assert log.count("Application shutdown complete.") == workers, log
    assert "not committed" not in log, log
    assert "refresher did not stop" not in log, log  # the hang dda462e bounded: none at all
    # uvicorn re-raises the signal in its process after a clean shutdown; the supervisor of
    # several workers exits 0 once they have.
    assert returncode == (-signal.SIGTERM if workers == 1 else 0), log

    calls = STREAMS + JSON_CALLS
    billed = JSON_CALLS + STREAMS // 2
    events = await usage_events(redis, caller)
    by_id = {event["request_id"]: event for event in events}
    assert len(events) == len(by_id) == calls  # one event per call, none twice
    for request_id in outcomes.cut:
        event = by_id[request_id]
        assert (event["billable"], event["status"], event["error_code"]) == ("0", "error", "50303")
    assert sum(event["billable"] == "1" for event in events) == billed
    assert await quota_units(redis, caller) == 100 - billed
    await assert_call_logs(redis, db_pool, caller, rows=calls, billed=billed)


async def unready_soon(probe: httpx.AsyncClient, url: str) -> bool:
    """A readiness probe stops seeing 200 within a second of the signal (refused, hung or
    503 `draining`: all mean unready to the kubelet). With several workers the supervisor
    passes the signal on at its next half-second tick."""
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            if (await probe.get(f"{url}/readyz")).status_code != 200:
                return True
        except httpx.TransportError:
            return True
        await asyncio.sleep(0.05)
    return False
