"""The HTTP client every provider adapter uses: one aiohttp session per provider, created at
start-up and kept for the life of the process; `post` and `open_stream`, with every transport
error and non-2xx status translated into `gateway.providers.errors` at this edge, and
`HttpAdapter`, what every adapter holds (name, session, credential headers).

Why aiohttp and not httpx: measured on this project's load harness (loadtests/README.md),
httpx 0.28 spent ~350 µs of CPU per proxied request with one connection and ~1,000 µs at 32
(its pool polls every idle connection on each request), against ~50-65 µs for aiohttp.
The gateway's whole CPU budget is 300 µs per request.
"""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.providers.errors import ProviderTimeout, ProviderUnavailable, error_for_status
from gateway.settings import GatewaySettings

TIMEOUTS = (asyncio.TimeoutError, aiohttp.ServerTimeoutError)


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


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], provider: str
) -> bytes:
    """POST and return the 2xx answer's body; any failure leaves as a ProviderError (the
    provider's error body is read, to keep the connection, and never quoted)."""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            raw = await response.read()
            status = response.status
    except TIMEOUTS:
        raise ProviderTimeout("The model provider timed out.") from None
    except aiohttp.ClientError:
        raise ProviderUnavailable("The model provider could not be reached.") from None
    if status >= 300:
        raise error_for_status(status, provider)
    return raw


async def open_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], provider: str
) -> aiohttp.ClientResponse:
    """POST and return the open 2xx response, its body not yet read."""
    try:
        response = await session.post(url, data=body, headers=headers)
    except TIMEOUTS:
        raise ProviderTimeout("The model provider timed out.") from None
    except aiohttp.ClientError:
        raise ProviderUnavailable("The model provider could not be reached.") from None
    if response.status >= 300:
        response.close()
        raise error_for_status(response.status, provider)
    return response


class HttpAdapter:
    """What every adapter holds: its name, its one long-lived session, the headers each of
    its requests carries (credentials), to which a call adds its own (trace context)."""

    def __init__(self, name: str, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        self.name = name
        self._session = session
        self._headers = {**headers, "content-type": "application/json"}

    async def aclose(self) -> None:
        await self._session.close()

    def _request_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {**self._headers, **headers} if headers else self._headers

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> bytes:
        return await post(self._session, url, body, self._request_headers(headers), self.name)

    async def _open_stream(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """The open response; the caller closes it (closing, not releasing, a response not
        read to the end drops its connection, so an abandoned stream stops the provider)."""
        return await open_stream(
            self._session, url, body, self._request_headers(headers), self.name
        )
