"""Metering at the edges (issue 13): Redis away while answers complete, and a client that
leaves before the provider answered. The rule (DESIGN.md, gateway/call_result.py): no
complete 2xx answer unbilled, no failure billed, nothing billed twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from devstack.servers import ValkeyServer, free_port
from tests.gateway.helpers import (
    Caller,
    chat,
    gateway,
    make_caller,
    quota_units,
    sse_events,
    wait_for_events,
)
from tests.support import wait_until


async def charged_caller(db_pool: asyncpg.Pool, quota: int) -> Caller:
    """Trials already spent, so every call reserves quota: a refund shows in the balance."""
    return await make_caller(db_pool, quota=quota, tier="paid", trials_used=3)


@pytest.fixture(scope="module")
def durable_valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A Valkey of this module's own, durable (append-only), so stopping and starting it is a
    blip that keeps the reservations, as in production, and no other test sees it."""
    server = ValkeyServer(Path(tmp_path_factory.mktemp("valkey-blip")), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_answers_completed_while_redis_is_away_are_billed_exactly_once(
    durable_valkey: ValkeyServer, gateway_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    """Valkey stops for about 3 s while four answers (two JSON, two streams) and one failure
    are with the provider. Every commit fails at first; the retries settle them once Valkey is
    back: the four answers billed once each, the failure not billed."""
    redis = redis_asyncio.Redis.from_url(durable_valkey.url)
    caller = await charged_caller(db_pool, quota=20)
    reservations = keyspace.reservations(caller.shard)
    try:
        with gateway(gateway_env, REDIS_URL=durable_valkey.url) as url:
            async with httpx.AsyncClient(timeout=30) as client:
                assert (await chat(client, url, caller)).status_code == 200  # records warm
                slow = "[[mock latency_ms=2000]]"
                answers = [
                    asyncio.create_task(
                        chat(
                            client,
                            url,
                            caller,
                            slow,
                            stream=stream,
                            headers={"X-Request-ID": f"blip-{index}"},
                        )
                    )
                    for index, stream in enumerate([False, False, True, True])
                ]
                failure = asyncio.create_task(
                    chat(client, url, caller, "[[mock latency_ms=2000 status=500]]",
                         headers={"X-Request-ID": "blip-failed"})
                )  # fmt: skip

                async def all_admitted() -> bool:
                    return bool(await redis.hlen(reservations) == 5)

                await wait_until(all_admitted, 10, "the five calls to be admitted")
                await redis.aclose()  # its connection dies with the server anyway
                stopped_at = time.monotonic()
                await asyncio.to_thread(durable_valkey.stop)
                # The provider answers while Redis is away: the clients get everything.
                responses = await asyncio.gather(*answers)
                failed = await failure
                assert time.monotonic() - stopped_at < 3, "the answers came after the outage"
                await asyncio.sleep(max(0.0, 3 - (time.monotonic() - stopped_at)))
                await asyncio.to_thread(durable_valkey.start)
                metrics = (await client.get(f"{url}/metrics")).text
            redis = redis_asyncio.Redis.from_url(durable_valkey.url)
            events = await wait_for_events(redis, caller, 6, timeout_s=15)
    finally:
        await redis.aclose()

    for response in responses[:2]:
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"]
    for response in responses[2:]:
        assert response.status_code == 200, response.text
        assert sse_events(response.text)[-1] == b"[DONE]"
    assert failed.status_code == 503
    assert len(events) == 6
    assert len({event["call_id"] for event in events}) == 6  # nothing settled twice
    by_request = {event["request_id"]: event for event in events}
    for index in range(4):
        event = by_request[f"blip-{index}"]
        assert (event["billable"], event["status"], event["units"]) == ("1", "success", "1")
    failed_event = by_request["blip-failed"]
    assert (failed_event["billable"], failed_event["status"], failed_event["units"]) == (
        "0", "error", "0",
    )  # fmt: skip
    fresh = redis_asyncio.Redis.from_url(durable_valkey.url)
    try:
        assert await quota_units(fresh, caller) == 20 - 5  # the warm-up call and four answers
        assert await fresh.hlen(reservations) == 0  # nothing left for the reaper
    finally:
        await fresh.aclose()
    [retries] = [line for line in metrics.splitlines()
                 if line.startswith("agentlink_gateway_commit_retries_total ")]  # fmt: skip
    assert float(retries.split()[1]) > 0, metrics


def raw_request(agent_id: str, api_key: str, content: str, *, stream: bool) -> bytes:
    body = orjson.dumps({"messages": [{"role": "user", "content": content}], "stream": stream})
    head = (
        f"POST /proxy/v1/agents/{agent_id}/chat HTTP/1.1\r\nHost: gateway\r\n"
        f"X-AgentLink-Key: {api_key}\r\nX-Request-ID: gone-early\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def leave_once_admitted(
    gateway_url: str, redis: redis_asyncio.Redis, caller: Caller, latency_ms: int, stream: bool
) -> None:
    """Send a call the mock answers after `latency_ms`, over a raw socket, and close the socket
    as soon as the call is admitted (its unit reserved), before any answer."""
    host, port = gateway_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    content = f"[[mock latency_ms={latency_ms}]]"
    writer.write(raw_request(caller.agent.agent_id, caller.key.plaintext, content, stream=stream))
    await writer.drain()

    async def admitted() -> bool:
        return await quota_units(redis, caller) == 4

    await wait_until(admitted, 10, "the call to be admitted")
    writer.close()  # the client goes away with no answer
    await writer.wait_closed()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_leaves_before_the_provider_answers_is_not_billed(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, stream: bool
) -> None:
    """The same rule for JSON and streams: gone before the provider answered means unbilled,
    logged `cancelled`, and the gateway stops waiting for the provider at once."""
    caller = await charged_caller(db_pool, quota=5)
    provider_s = 2.5  # under the test gateway's 3 s upstream timeout
    await leave_once_admitted(gateway_url, redis, caller, int(provider_s * 1000), stream)
    left_at = time.monotonic()
    [event] = await wait_for_events(redis, caller, 1, timeout_s=provider_s)
    assert time.monotonic() - left_at < provider_s * 0.8  # settled well before the answer
    assert int(event["latency_ms"]) < provider_s * 1000
    assert (event["billable"], event["units"], event["charge"]) == ("0", "0", "quota")
    assert (event["status"], event["error_code"]) == ("cancelled", "client_disconnected")
    assert event["request_id"] == "gone-early"
    assert await quota_units(redis, caller) == 5


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_leaves_before_a_fast_answer_is_not_billed(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, stream: bool
) -> None:
    """An answer (JSON, or a stream's opening) that comes within the lazy watch's window (no
    watch task yet, gateway/disconnect.py) still finds the client gone: unbilled, logged
    `cancelled`."""
    caller = await charged_caller(db_pool, quota=5)
    provider_ms = 300  # within the gateway's 0.5 s before a call's watch starts
    await leave_once_admitted(gateway_url, redis, caller, provider_ms, stream=stream)
    [event] = await wait_for_events(redis, caller, 1, timeout_s=5)
    assert int(event["latency_ms"]) >= provider_ms  # the provider did answer, unwatched
    assert (event["billable"], event["units"]) == ("0", "0")
    assert (event["status"], event["error_code"]) == ("cancelled", "client_disconnected")
    assert await quota_units(redis, caller) == 5


async def test_a_client_that_leaves_a_short_stream_after_the_200_is_billed_as_cancelled(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    """A stream over within the lazy watch's window, its client gone after the 200: the
    provider had answered, so billed (DESIGN.md), and logged `cancelled`, as when a watch
    sees the client leave."""
    caller = await charged_caller(db_pool, quota=5)
    host, port = gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    content = "[[mock chunks=8 chunk_delay_ms=40]]"  # 0.28 s: within the 0.5 s
    writer.write(raw_request(caller.agent.agent_id, caller.key.plaintext, content, stream=True))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    writer.close()  # the client goes away mid-stream
    await writer.wait_closed()
    [event] = await wait_for_events(redis, caller, 1, timeout_s=5)
    assert (event["billable"], event["units"], event["charge"]) == ("1", "1", "quota")
    assert (event["status"], event["error_code"]) == ("cancelled", "client_disconnected")
    assert await quota_units(redis, caller) == 4
