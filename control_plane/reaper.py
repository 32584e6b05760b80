"""The reservation reaper: give back quota and trials that a dead gateway reserved.

`admit.lua` reserves a call's quota units (or a trial) and records a deadline in
`resvq:{sS}`; `commit.lua` settles it. A gateway that dies (or hangs, or loses Redis) between
the two leaves the reservation behind. `reap.lua` gives back every reservation whose deadline
passed and appends a non-billable `cancelled` event (error code `reaped`) to the shard's usage
stream, so the call still gets its `call_logs` row. Commit and reap both start from the
reservation hash, so exactly one of them settles a call.

`reap_expired` runs the script on all 1024 shards in pipelines (one round trip per chunk of
shards). With nothing due each script is a TIME and an empty ZRANGEBYSCORE, so a sweep costs
about a millisecond of Redis time; the worker runs it every few seconds.

The script goes out as a raw `EVALSHA` command, the same on one Redis and on a Redis Cluster:
redis-py's cluster pipeline refuses its script objects (by method name), but routes a raw
EVALSHA by its first key, so each shard's call reaches the primary that holds the shard (all
four keys share the shard's hash tag). A shard that answers NOSCRIPT (Redis restarted, or a
node that never saw the script) gets the script loaded (`SCRIPT LOAD`: on every primary of a
cluster) and is swept again; on one Redis this also saves the SCRIPT EXISTS that redis-py
sends before every pipeline holding a script object.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common import keyspace
from common.redis_store import LuaScripts, RedisClient, pipelined
from crypto.api_keys import SHARD_COUNT

logger = logging.getLogger("agentlink.worker")

_SCRIPT_LOADS = 3  # NOSCRIPT again after this many loads in one sweep: Redis keeps losing it


async def reap_expired(
    redis: RedisClient, scripts: LuaScripts, *, per_call_limit: int = 500
) -> int:
    """Give back every reservation past its deadline, on every shard; returns how many.

    A shard with more than `per_call_limit` due reservations is swept again until it has
    none left, so one run leaves nothing due behind however large the backlog.
    """
    if per_call_limit < 1:
        raise ValueError("per_call_limit must be at least 1")
    reap = scripts["reap"]

    def queue(pipe: Any, shard: int) -> None:
        keys = [keyspace.reservations(shard), keyspace.reservation_deadlines(shard),
                keyspace.usage_stream(shard), keyspace.key_spend(shard)]  # fmt: skip
        args = [keyspace.quota_prefix(shard), keyspace.trials_prefix(shard), per_call_limit]
        pipe.execute_command("EVALSHA", reap.sha, len(keys), *keys, *args)

    total = loads = 0
    shards = list(range(SHARD_COUNT))
    cluster = isinstance(redis, RedisCluster)
    unreachable: list[BaseException] = []
    while shards:
        again: list[int] = []
        unloaded = False
        async for chunk, replies in pipelined(redis, shards, queue, key=keyspace.reservations):
            for shard, reaped in zip(chunk, replies, strict=True):
                if isinstance(reaped, NoScriptError) and loads < _SCRIPT_LOADS:
                    unloaded = True  # the script did not run there: nothing was given back
                    again.append(shard)
                    continue
                if isinstance(reaped, (RedisConnectionError, RedisTimeoutError)) and cluster:
                    unreachable.append(reaped)  # a primary down: its shards wait for it
                    continue
                if isinstance(reaped, Exception):
                    raise reaped
                total += int(reaped)
                if int(reaped) >= per_call_limit:
                    again.append(shard)
        if unloaded:
            await redis.script_load(reap.script)
            loads += 1
        shards = again
    if len(unreachable) == SHARD_COUNT:
        raise unreachable[0]
    if unreachable:
        logger.warning(
            "reaper skipped %d of %d shards (primary unreachable)", len(unreachable),
            SHARD_COUNT, extra={"event": "reaper"},
        )  # fmt: skip
    return total
