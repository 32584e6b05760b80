"""The hot path's client on a Redis Cluster (REDIS_CLUSTER): one `HotRedis` per primary.

Each command goes to the primary that holds its first key's slot (every script's keys share
one slot: the user's `{sS}`, or the agent's `{aID}` for the record read). The slot map comes
from CLUSTER SLOTS, asked of any node that answers. A MOVED reply (slots moved, a replica
promoted) reloads the map and sends the command once more; an ASK reply (its slot is being
migrated, and the keys are not on the old node any more) sends it once to the node named, after
ASKING. (A script whose keys are split between the two nodes mid-migration gets TRYAGAIN: a
503 for admission, retried for a commit, gateway/settlement.py.) A primary that cannot be
reached fails its calls only (a RedisConnectionError: the callers' 503) and makes the next
call reload the map, in case another node has taken its slots over. So calls of users on the
other primaries go on being served while one is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlparse

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.hot_redis import Arg, HotRedis

_SLOTS = 16384
# After a node could not be reached, the map is reloaded at most this often: a dead primary's
# calls fail fast instead of each asking every node for the map.
_RELOAD_AFTER_FAILURE_S = 1.0

Address = tuple[str, int]


def _encoded(key: Arg) -> bytes:
    if isinstance(key, bytes):
        return key
    return str(key).encode()


class HotCluster:
    """`HotRedis`'s `execute_on` over a cluster. Create and close it inside one event loop."""

    def __init__(self, url: str, *, timeout_s: float, connections: int = 2) -> None:
        parsed = urlparse(url)
        self._url = parsed
        self._timeout_s = timeout_s
        self._connections = connections
        self._seeds: list[Address] = [(parsed.hostname or "127.0.0.1", parsed.port or 6379)]
        self._nodes: dict[Address, HotRedis] = {}
        self._slots: list[Address | None] = [None] * _SLOTS
        self._loaded = False
        self._reload = asyncio.Lock()
        self._reloading: asyncio.Future[None] | None = None
        self._stale_since: float | None = None  # a node failed: reload the map (rate limited)

    def _node(self, address: Address) -> HotRedis:
        node = self._nodes.get(address)
        if node is None:
            netloc = f"{address[0]}:{address[1]}"
            if "@" in self._url.netloc:
                netloc = self._url.netloc.rsplit("@", 1)[0] + "@" + netloc
            url = self._url._replace(netloc=netloc, path="/0").geturl()
            node = self._nodes[address] = HotRedis(
                url, timeout_s=self._timeout_s, connections=self._connections
            )
        return node

    async def execute_on(self, key: Arg, *parts: Arg) -> Any:
        """Run `parts` on the primary holding `key`'s slot."""
        if not self._loaded:
            await self._reload_map()
        elif self._stale_since is not None:
            self._reload_soon()
        slot = key_slot(_encoded(key))
        for attempt in range(2):
            address = self._slots[slot]
            if address is None:
                raise RedisConnectionError(f"No primary holds slot {slot}.")
            try:
                return await self._node(address).execute(*parts)
            except RedisConnectionError:
                if self._stale_since is None:
                    self._stale_since = time.monotonic()
                raise
            except ResponseError as error:
                redirect = str(error)
                if attempt == 0 and redirect.startswith("ASK "):
                    return await self._node(_target(redirect)).execute_asking(*parts)
                if attempt or not redirect.startswith("MOVED "):
                    raise
                await self._reload_map(force=True)
        raise AssertionError("unreachable")

    def send_on(self, key: Arg, *parts: Arg) -> Awaitable[Any]:
        """`execute_on`, sent when awaited (a redirect or a map reload may come first)."""
        return self.execute_on(key, *parts)

    def send_now(self, key: Arg, *parts: Arg) -> asyncio.Future[Any] | None:
        """Never at once here: a command may be redirected (MOVED, ASK) or wait for the map."""
        return None

    def _reload_soon(self) -> None:
        """In the background, so that calls on the primaries that answer never wait for it."""
        stale = self._stale_since
        if stale is None or time.monotonic() - stale < _RELOAD_AFTER_FAILURE_S:
            return
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.ensure_future(self._reload_map(force=True))
            self._reloading.add_done_callback(_ignore_failure)

    async def _reload_map(self, *, force: bool = False) -> None:
        async with self._reload:
            if force or not self._loaded:  # else: the first calls' one load has been made
                await self._load_slots()

    async def _load_slots(self) -> None:
        known = [*self._seeds, *(a for a in self._nodes if a not in self._seeds)]
        for address in known:
            try:
                reply = await self._node(address).execute("CLUSTER", "SLOTS")
            except RedisConnectionError:
                continue
            slots: list[Address | None] = [None] * _SLOTS
            for first, last, primary, *_ in reply:
                owner = (primary[0].decode() or address[0], int(primary[1]))
                slots[first : last + 1] = [owner] * (last - first + 1)
            self._slots = slots
            self._seeds = sorted({a for a in slots if a is not None}) or self._seeds
            self._loaded = True
            self._stale_since = None
            return
        if not self._loaded:
            raise RedisConnectionError("No node of the Redis Cluster answers.")
        self._stale_since = time.monotonic()  # keep the old map; try again a little later

    async def aclose(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisConnectionError):
                await self._reloading
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()


def _target(redirect: str) -> Address:
    """The node a MOVED/ASK reply names: `ASK <slot> <host>:<port>`."""
    host, _, port = redirect.split()[2].rpartition(":")
    return (host, int(port))


def _ignore_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: the next call's failure says what is wrong


__all__ = ["HotCluster"]
