"""The worker's Redis side on a real 3-primary Valkey cluster (issue 13, Redis Cluster mode):
the reaper reaches every shard's primary, and gives back each reservation exactly once."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio.cluster import RedisCluster

from common import keyspace
from common.redis_store import LuaScripts, lua_prelude
from control_plane.reaper import reap_expired
from crypto.api_keys import SHARD_COUNT
from tests.control_plane.conftest import CLUSTER_PRIMARIES

# What admit.lua leaves behind for a call it charged to quota, in the prelude's own
# reservation format, already past its deadline: the gateway "died" before committing.
# KEYS: resv:{sS}, resvq:{sS}, quota:{sS}:user; ARGV: call id, user id, units, request id.
LEFT_BEHIND = (
    lua_prelude()
    + """
local now = now_ms()
redis.call("DECRBY", KEYS[3], ARGV[3])
redis.call("HSET", KEYS[1], ARGV[1], encode_reservation({
  user_id = ARGV[2], agent_id = "agent-1", agent_version = "1", charge = "quota",
  units = ARGV[3], key_id = "key-1", admitted_ms = now - 5, request_id = ARGV[4], spend = "",
}))
redis.call("ZADD", KEYS[2], now - 1, ARGV[1])
return 1
"""
)


async def leave_reservations(
    redis: RedisCluster, reservations: dict[int, tuple[str, str]], units: int
) -> None:
    """One expired reservation per shard: shard -> (user id, call id)."""
    reserve = redis.register_script(LEFT_BEHIND)

    async def one(shard: int, user_id: str, call_id: str) -> None:
        quota = keyspace.quota(shard, user_id)
        await redis.set(quota, 100)
        keys = [keyspace.reservations(shard), keyspace.reservation_deadlines(shard), quota]
        await reserve(keys=keys, args=[call_id, user_id, units, f"client-{shard}"])

    items = list(reservations.items())
    for start in range(0, len(items), 64):  # the client's pool holds fewer connections
        await asyncio.gather(*(one(s, *pair) for s, pair in items[start : start + 64]))


async def test_the_reaper_gives_back_reservations_on_every_shard_of_the_cluster_once(
    cluster_redis: RedisCluster,
) -> None:
    redis = cluster_redis
    owners = {redis.get_node_from_key(keyspace.shard_tag(s)).name for s in range(SHARD_COUNT)}
    assert len(owners) == CLUSTER_PRIMARIES
    reservations = {s: (str(uuid.uuid4()), uuid.uuid4().hex) for s in range(SHARD_COUNT)}
    await leave_reservations(redis, reservations, units=3)
    scripts = LuaScripts(redis)  # not preloaded: every primary answers NOSCRIPT first

    assert await reap_expired(redis, scripts) == SHARD_COUNT

    for shard, (user_id, call_id) in reservations.items():
        assert int(await redis.get(keyspace.quota(shard, user_id))) == 100
        assert await redis.hlen(keyspace.reservations(shard)) == 0
        assert await redis.zcard(keyspace.reservation_deadlines(shard)) == 0
        events = await redis.xrange(keyspace.usage_stream(shard))
        assert [fields[b"call_id"] for _, fields in events] == [call_id.encode()]
        (_, event), = events  # fmt: skip
        assert (event[b"status"], event[b"billable"], event[b"error_code"]) == (
            b"cancelled", b"0", b"reaped"
        )  # fmt: skip
        assert event[b"request_id"] == f"client-{shard}".encode()
    # Once: a second sweep finds nothing, and gives nothing back twice.
    assert await reap_expired(redis, scripts) == 0
    assert int(await redis.get(keyspace.quota(7, reservations[7][0]))) == 100


async def test_the_reaper_reloads_its_script_when_one_primary_lost_it(
    cluster_redis: RedisCluster,
) -> None:
    redis = cluster_redis
    scripts = LuaScripts(redis)
    await scripts.preload()  # on every primary ...
    lost = redis.get_node_from_key(keyspace.shard_tag(0))
    await redis.execute_command("SCRIPT", "FLUSH", target_nodes=lost)  # ... but one lost it
    reservations = {s: (str(uuid.uuid4()), uuid.uuid4().hex) for s in range(SHARD_COUNT)}
    await leave_reservations(redis, reservations, units=2)

    assert await reap_expired(redis, scripts) == SHARD_COUNT
    sha = scripts["reap"].sha
    assert await redis.execute_command("SCRIPT", "EXISTS", sha, target_nodes=lost) == [1]
    assert int(await redis.get(keyspace.quota(0, reservations[0][0]))) == 100
