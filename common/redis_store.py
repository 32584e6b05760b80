"""The Redis client and the Lua scripts, both built once at start-up.

Scripts live as `.lua` files in `common/lua/`, each opening with a comment of its keys, args
and return value. `LuaScripts` registers them all (`register_script`: EVALSHA, falling back to
SCRIPT LOAD on NOSCRIPT, e.g. after a Redis restart) and preloads them so `/readyz` can say
whether Redis has them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

import redis.asyncio as redis_asyncio
from redis.commands.core import AsyncScript
from redis.maint_notifications import MaintNotificationsConfig


def create_redis(
    url: str, *, socket_timeout_s: float = 2.0, max_connections: int = 256
) -> redis_asyncio.Redis:
    """A client whose calls fail fast when Redis is down instead of hanging a request.

    The pool blocks (up to the socket timeout) when all `max_connections` are busy: the plain
    `ConnectionPool` raises MaxConnectionsError instead, which turned a burst of more
    concurrent requests than connections into 503s.
    """
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
        # redis-py's default ("auto") is truthy and makes the pool skip its check that a
        # pooled connection is still open, so after a Redis restart every pooled connection
        # failed one request. Maintenance notifications are a Redis Enterprise feature.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    # from_pool: the client owns the pool, so aclose() also closes its connections.
    return redis_asyncio.Redis.from_pool(pool)


def read_lua_sources() -> dict[str, str]:
    """Every script in `common/lua/`, by file name without `.lua`."""
    folder = resources.files("common") / "lua"
    return {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua")
    }


class ScriptSet(Protocol):
    """Anything that runs the project's scripts by name: `await scripts[name](keys=, args=)`."""

    def __getitem__(self, name: str) -> Callable[..., Awaitable[Any]]: ...


class LuaScripts:
    def __init__(self, client: redis_asyncio.Redis) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source) for name, source in read_lua_sources().items()
        }

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]

    @property
    def names(self) -> list[str]:
        return sorted(self._scripts)

    async def preload(self) -> None:
        for script in self._scripts.values():
            await self._client.script_load(script.script)

    async def all_loaded(self) -> bool:
        shas = [script.sha for script in self._scripts.values()]
        if not shas:
            return True
        exists: list[Any] = await self._client.script_exists(*shas)
        return all(bool(flag) for flag in exists)
