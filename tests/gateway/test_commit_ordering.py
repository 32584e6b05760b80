"""A call ends before its commit returns (gateway/settlement.py): the answer is sent, the call's
end (metrics, the server's end of the request) follows at once, and the commit, sent as the
answer ended, settles in a task of its own. Redis holding the commit back delays nothing the
client or the next request sees, and the call is still billed exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from devstack.servers import ValkeyServer, free_port
from tests.gateway.helpers import (
    chat,
    gateway,
    make_caller,
    quota_units,
    sse_events,
    wait_for_events,
)
from tests.support import wait_until

_PAUSE_MS = 2000


@pytest.fixture(scope="module")
def own_valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A Valkey of this module's own: pausing its writes stalls no other test's processes."""
    server = ValkeyServer(Path(tmp_path_factory.mktemp("valkey-pause")), free_port(), durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ended_calls(metrics: str) -> float:
    """Calls the gateway counts as ended (any route, any status)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("agentlink_gateway_requests_total{")
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_call_ends_before_its_commit_returns_and_is_billed_once(
    own_valkey: ValkeyServer, gateway_env: dict[str, str], db_pool: asyncpg.Pool, stream: bool
) -> None:
    """Writes paused in Valkey once the call is admitted: the commit waits ~2 s in Redis.
    Meanwhile the client has the whole answer and the gateway has counted the call as ended;
    once the pause is over the call is billed once and its reservation is gone."""
    caller = await make_caller(db_pool, quota=10, tier="paid", trials_used=3)
    reservations = keyspace.reservations(caller.shard)
    redis = redis_asyncio.Redis.from_url(own_valkey.url)
    try:
        with gateway(gateway_env, REDIS_URL=own_valkey.url) as url:
            async with httpx.AsyncClient(timeout=30) as client:
                assert (await chat(client, url, caller)).status_code == 200  # records warm
                await wait_for_events(redis, caller, 1)
                ended_before = ended_calls((await client.get(f"{url}/metrics")).text)
                call = asyncio.create_task(
                    chat(client, url, caller, "[[mock latency_ms=300]]", stream=stream)
                )

                async def admitted() -> bool:
                    return bool(await redis.hlen(reservations) == 1)

                await wait_until(admitted, 10, "the call to be admitted")
                await redis.execute_command("CLIENT", "PAUSE", _PAUSE_MS, "WRITE")
                paused_at = time.monotonic()
                response = await call
                ended = ended_calls((await client.get(f"{url}/metrics")).text)
                still_reserved = await redis.hlen(reservations)
                in_pause = time.monotonic() - paused_at < _PAUSE_MS / 1000
                events = await wait_for_events(redis, caller, 2, timeout_s=15)
    finally:
        await redis.aclose()

    assert response.status_code == 200, response.text
    if stream:
        assert sse_events(response.text)[-1] == b"[DONE]"
    else:
        assert response.json()["choices"][0]["message"]["content"]
    assert in_pause, "the checks above came after the pause: they prove nothing"
    assert still_reserved == 1  # the commit had not run yet ...
    assert ended == ended_before + 1  # ... and the call had ended all the same
    assert len(events) == 2
    assert [event["billable"] for event in events] == ["1", "1"]
    fresh = redis_asyncio.Redis.from_url(own_valkey.url)
    try:
        assert await quota_units(fresh, caller) == 10 - 2
        assert await fresh.hlen(reservations) == 0
    finally:
        await fresh.aclose()
