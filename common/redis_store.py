"""The Redis client and the Lua scripts, both built once at start-up.

Scripts live as `.lua` files in `common/lua/`, each opening with a comment of its keys, args
and return value. What they share (server time, the reservation format, the usage event's
fields) is `common/lua/prelude.lua`, prepended to each when it is read, after one generated
line: `local USAGE_EVENT_FIELDS = {...}`, the fields of `common.usage_events.UsageEvent`.
`LuaScripts` registers them all (`register_script`: EVALSHA, falling back to SCRIPT LOAD on
NOSCRIPT, e.g. after a Redis restart) and preloads them so `/readyz` can say whether Redis
has them.

`pipelined` runs commands for many keys (the 1024 shards' streams, say) in pipelines of a few
hundred keys each: one round trip per chunk.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from importlib import resources
from typing import Any, Literal, Protocol, TypeVar, overload

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.maint_notifications import MaintNotificationsConfig

from common.usage_events import USAGE_EVENT_FIELDS

PRELUDE = "prelude.lua"
T = TypeVar("T")


# A cluster call is tried at most this many more times, after a MOVED/ASK redirect (the
# slot map changed) or a node that cannot be reached (the map is reloaded first). Few, so that
# a call on a dead primary's slots still fails within about one socket timeout.
CLUSTER_RETRIES = 2

RedisClient = redis_asyncio.Redis | RedisCluster
"""What `create_redis` gives: one node's client, or a Redis Cluster's (REDIS_CLUSTER)."""


@overload
def create_redis(
    url: str,
    *,
    socket_timeout_s: float = ...,
    max_connections: int = ...,
    cluster: Literal[False] = ...,
) -> redis_asyncio.Redis: ...


@overload
def create_redis(
    url: str, *, socket_timeout_s: float = ..., max_connections: int = ..., cluster: bool
) -> RedisClient: ...


def create_redis(
    url: str, *, socket_timeout_s: float = 2.0, max_connections: int = 256, cluster: bool = False
) -> RedisClient:
    """A client whose calls fail fast when Redis is down instead of hanging a request.

    `cluster`: `url` is any node of a Redis Cluster (REDIS_CLUSTER); see `create_redis_cluster`.

    The pool blocks (up to the socket timeout) when all `max_connections` are busy: the plain
    `ConnectionPool` raises MaxConnectionsError instead, which turned a burst of more
    concurrent requests than connections into 503s.
    """
    if cluster:
        return create_redis_cluster(
            url, socket_timeout_s=socket_timeout_s, max_connections=max_connections
        )
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


def create_redis_cluster(
    url: str, *, socket_timeout_s: float = 2.0, max_connections: int = 256
) -> RedisCluster:
    """A Redis Cluster client with the single-node client's timeouts; `url` names any node.

    It routes each command by its first key's slot (every script's keys share one slot) and
    learns the slot map on its first command. A MOVED/ASK redirect or an unreachable node
    reloads the map and tries again, at most CLUSTER_RETRIES times, briefly: a call on the
    slots of a primary that is down fails (a ConnectionError: the callers' 503) rather than
    waiting for it. `require_full_coverage=False`: the other primaries' slots keep serving
    while one is down (the servers run `cluster-require-full-coverage no`, docs/operations.md).
    `max_connections` is per node; unlike the single-node pool, redis-py's cluster pool does
    not wait for a free connection, so a burst past it fails (MaxConnectionsError).
    """
    return RedisCluster.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
        require_full_coverage=False,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), CLUSTER_RETRIES),
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


async def close_redis(client: RedisClient) -> None:
    """Closes every connection of `client`. redis-py 8.1's `RedisCluster.aclose()` closes
    nothing while a slot-map reload is pending, which a ConnectionError leaves behind (a node
    that died): the nodes' connections are then closed here directly, the known nodes and the
    startup nodes both (they are separate objects)."""
    if isinstance(client, RedisCluster):
        await client.nodes_manager.aclose()
        await client.nodes_manager.aclose("startup_nodes")
    await client.aclose()


async def redis_answers(client: RedisClient) -> None:
    """Readiness: raises unless Redis serves. One node: it answers PING. A cluster: some
    primary answers and says `cluster_state:ok`, which it still does while another primary is
    down (`cluster-require-full-coverage no`): only that primary's slots fail then, so a pod is
    not taken out of service for them (a PING to every node, redis-py's default, would
    take every pod out at once). The primaries are asked at once; the first that serves wins."""
    if not isinstance(client, RedisCluster):
        await client.ping()
        return

    async def serves(node: Any) -> bool:
        try:
            info: dict[str, Any] = await client.cluster_info(target_nodes=node)
        except (RedisError, RedisClusterException):
            return False
        return info.get("cluster_state") == "ok"

    asks = [asyncio.ensure_future(serves(node)) for node in client.get_primaries()]
    try:
        for ask in asyncio.as_completed(asks):
            if await ask:
                return
    finally:
        for ask in asks:
            ask.cancel()
    raise RedisConnectionError("No primary of the Redis Cluster serves.")


def lua_prelude() -> str:
    """What every script is prefixed with: the usage event's fields, then prelude.lua."""
    fields = ", ".join(f'"{name}"' for name in USAGE_EVENT_FIELDS)
    prelude = (resources.files("common") / "lua" / PRELUDE).read_text(encoding="utf-8")
    return f"local USAGE_EVENT_FIELDS = {{{fields}}}\n{prelude}\n"


# admit.lua's one line that reads the agent record, and what admit_sharded has there instead:
# on a Redis Cluster the record lives in another slot, so the gateway passes its fields.
_AGENT_READ = (
    'local agent = redis.call("HMGET", KEYS[8], "status", "version", "units", "knowledge")\n'
)
_AGENT_FROM_ARGS = "local agent = {ARGV[11], ARGV[12], ARGV[13], ARGV[14]}\n"


def sharded_admit(admit: str) -> str:
    """admit.lua for a Redis Cluster (its header): the agent's fields from ARGV[11..14]. A
    text swap of one line, so that one script is written once and one Redis runs it as is."""
    if admit.count(_AGENT_READ) != 1:
        raise RuntimeError("admit.lua must read the agent record in exactly one line")
    return admit.replace(_AGENT_READ, _AGENT_FROM_ARGS)


def read_lua_sources() -> dict[str, str]:
    """Every script in `common/lua/` with the prelude before it, by file name without `.lua`,
    and `admit_sharded` (see `sharded_admit`)."""
    folder = resources.files("common") / "lua"
    prelude = lua_prelude()
    sources = {
        entry.name.removesuffix(".lua"): prelude + entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua") and entry.name != PRELUDE
    }
    sources["admit_sharded"] = sharded_admit(sources["admit"])
    return sources


class ScriptSet(Protocol):
    """Anything that runs the project's scripts by name: `await scripts[name](keys=, args=)`."""

    def __getitem__(self, name: str) -> Callable[..., Awaitable[Any]]: ...


class _NodeLoadedScript(AsyncScript):
    """A script on a Redis Cluster: NOSCRIPT (the key's primary restarted) is answered with
    EVAL there, which also loads it there. redis-py's own answer, SCRIPT LOAD on every
    primary, fails while any one of them is down, and with it the call of a user on another."""

    async def __call__(
        self, keys: Sequence[Any] | None = None, args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:  # fmt: skip
        keys, args = list(keys or ()), list(args or ())
        target = client or self.registered_client
        try:
            return await target.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await target.execute_command("EVAL", self.script, len(keys), *keys, *args)


class LuaScripts:
    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {
            name: _NodeLoadedScript(client, source)
            if isinstance(client, RedisCluster)
            else client.register_script(source)
            for name, source in read_lua_sources().items()
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


def queue_script(
    pipe: Any, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], *, load: bool = False
) -> None:
    """Queue `script` in a pipeline as a raw EVALSHA, the same on one Redis and on a cluster:
    redis-py's cluster pipeline refuses its script objects (by method name) but routes a raw
    EVALSHA by its first key. Its reply is a NoScriptError until the script is loaded (Redis
    restarted): the caller redoes with `load`, an EVAL, which loads it on the key's node."""
    if load:
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
    else:
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


async def pipelined(
    redis: RedisClient,
    items: Sequence[T],
    queue: Callable[[Any, T], object],
    *,
    chunk_size: int = 256,
    key: Callable[[T], str] | None = None,
) -> AsyncIterator[tuple[Sequence[T], list[Any]]]:
    """`queue(pipe, item)` for every item, `chunk_size` items per pipeline (one round trip);
    yields each chunk with its replies, in order, a failed command's error as its reply.
    `queue` may queue several commands per item, or be a coroutine (a script call).

    On a Redis Cluster, given `key` (the key an item's commands are routed by), each
    primary's items go in pipelines of their own, one primary after another, and one that
    cannot be reached gives its error as the reply of each of its commands: one primary down
    costs only its own keys. Without `key`, a cluster pipeline fails whole on one down node.
    """
    if key is not None and isinstance(redis, RedisCluster):
        for node_chunk, node_replies in await _per_node(redis, items, queue, chunk_size, key):
            yield node_chunk, node_replies
        return
    for start in range(0, len(items), chunk_size):
        chunk = items[start : start + chunk_size]
        async with redis.pipeline(transaction=False) as pipe:
            for item in chunk:
                await _queue(pipe, queue, item)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        yield chunk, replies


async def _queue(pipe: Any, queue: Callable[[Any, T], object], item: T) -> int:
    """Queue one item's commands; how many it queued."""
    before = len(pipe)
    queued = queue(pipe, item)
    # A coroutine only: a queued command returns the pipeline, and awaiting a cluster
    # pipeline (re)initialises it, dropping the commands queued so far.
    if inspect.iscoroutine(queued):
        await queued
    return len(pipe) - before


async def _per_node(
    redis: RedisCluster,
    items: Sequence[T],
    queue: Callable[[Any, T], object],
    chunk_size: int,
    key: Callable[[T], str],
) -> list[tuple[Sequence[T], list[Any]]]:
    await redis.initialize()  # the slot map (a no-op once known)
    by_node: dict[str, list[T]] = {}
    for item in items:
        node = redis.get_node_from_key(key(item))  # None: no primary holds the slot
        by_node.setdefault("" if node is None else node.name, []).append(item)

    async def one(chunk: list[T]) -> tuple[Sequence[T], list[Any]]:
        queued, failure = 0, None
        # Twice: with one primary unreachable redis-py resets the cluster's connections, and
        # the next node's pipeline can fail once on a closed connection.
        for _ in range(2):
            queued = 0
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for item in chunk:
                        queued += await _queue(pipe, queue, item)
                    return chunk, await pipe.execute(raise_on_error=False)
            except (RedisError, RedisClusterException, OSError, AttributeError) as error:
                failure = error
        return chunk, [failure] * queued

    # One primary after the other, not all at once: when a node cannot be reached redis-py
    # resets the cluster's connections, and a pipeline in flight on another node then
    # fails inside redis-py ("'NoneType' object has no attribute 'writelines'").
    return [await one(node_items[start : start + chunk_size])
            for node_items in by_node.values()
            for start in range(0, len(node_items), chunk_size)]  # fmt: skip
