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
"""

from __future__ import annotations

import redis.asyncio as redis_asyncio

from common import keyspace
from common.redis_store import LuaScripts
from crypto.api_keys import SHARD_COUNT

_SHARDS_PER_PIPELINE = 256


async def reap_expired(
    redis: redis_asyncio.Redis, scripts: LuaScripts, *, per_call_limit: int = 500
) -> int:
    """Give back every reservation past its deadline, on every shard; returns how many.

    A shard with more than `per_call_limit` due reservations is swept again until it has
    none left, so one run leaves nothing due behind however large the backlog.
    """
    if per_call_limit < 1:
        raise ValueError("per_call_limit must be at least 1")
    reap = scripts["reap"]
    total = 0
    shards = list(range(SHARD_COUNT))
    while shards:
        again: list[int] = []
        for start in range(0, len(shards), _SHARDS_PER_PIPELINE):
            chunk = shards[start : start + _SHARDS_PER_PIPELINE]
            async with redis.pipeline(transaction=False) as pipe:
                for shard in chunk:
                    keys = [
                        keyspace.reservations(shard),
                        keyspace.reservation_deadlines(shard),
                        keyspace.usage_stream(shard),
                    ]
                    await reap(
                        keys=keys,
                        args=[keyspace.shard_tag(shard), per_call_limit],
                        client=pipe,
                    )
                replies = await pipe.execute()
            for shard, reaped in zip(chunk, replies, strict=True):
                count = int(reaped)
                total += count
                if count >= per_call_limit:
                    again.append(shard)
        shards = again
    return total
