"""A client that leaves before its body is read is a client disconnect (499), not a server
error (issue 9, item 11): anyone could otherwise inflate the 5xx rate that alerts and
autoscaling read."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable

import asyncpg
import httpx

from tests.gateway.helpers import make_caller

ROUTE = 'route="/proxy/v1/agents/{agent_id}/chat"'


def requests_of(metrics: str, status_class: str) -> float:
    labels = re.escape(f'{ROUTE},status_class="{status_class}"')
    match = re.search(rf"^agentlink_gateway_requests_total\{{{labels}\}} (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def test_leaving_before_the_body_is_read_counts_as_499(
    start_gateway: Callable[..., str], db_pool: asyncpg.Pool
) -> None:
    url = start_gateway()
    caller = await make_caller(db_pool)
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /proxy/v1/agents/{caller.agent.agent_id}/chat HTTP/1.1\r\nHost: x\r\n"
        f"X-AgentLink-Key: {caller.key.plaintext}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    for _ in range(20):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head + b'{"messages": [')  # a tenth of the body, then gone
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = (await client.get(f"{url}/metrics")).text
            if requests_of(metrics, "4xx") >= 20:
                break
            await asyncio.sleep(0.05)
    assert requests_of(metrics, "4xx") == 20
    assert requests_of(metrics, "5xx") == 0
