"""The HTTP client every provider adapter uses: one aiohttp session per provider, created at
start-up and kept for the life of the process.

Why aiohttp and not httpx: measured on this project's load harness (loadtests/README.md),
httpx 0.28 spent ~350 µs of CPU per proxied request with one connection and ~1,000 µs at 32
(its pool polls every idle connection on each request), against ~50-65 µs for aiohttp.
The gateway's whole CPU budget is 300 µs per request.
"""

from __future__ import annotations

import aiohttp

from gateway.settings import GatewaySettings


def create_session(
    settings: GatewaySettings, *, max_connections: int = 1000
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    timeout = aiohttp.ClientTimeout(
        total=None,  # streams may run long; per-call bounds are set by the gateway
        connect=settings.connect_timeout_s,
        sock_read=settings.stream_idle_timeout_s,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),  # a proxy must never carry cookies across calls
        raise_for_status=False,
        auto_decompress=True,
    )
