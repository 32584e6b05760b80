"""The hot path's client on a Redis Cluster (gateway/hot_cluster.py), on the real 3-primary
Valkey cluster: each command on its key's primary, a stale slot map corrected by MOVED, and
scripts that a node lost (restart, SCRIPT FLUSH) loaded again."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from common import keyspace
from common.redis_store import read_lua_sources
from crypto.api_keys import SHARD_COUNT
from devstack.servers import ValkeyCluster
from gateway.hot_cluster import HotCluster
from gateway.hot_redis import HotScripts


@pytest.fixture
async def hot(valkey_cluster: ValkeyCluster) -> AsyncIterator[HotCluster]:
    client = HotCluster(valkey_cluster.url, timeout_s=2)
    yield client
    await client.aclose()


def one_shard_per_primary(redis: RedisCluster) -> dict[int, int]:
    """primary's port -> a shard whose slot it holds"""
    return {redis.get_node_from_key(keyspace.shard_tag(s)).port: s for s in range(SHARD_COUNT)}


async def test_each_command_runs_on_the_primary_of_its_key(
    hot: HotCluster, cluster_client: RedisCluster
) -> None:
    marker = str(uuid.uuid4())
    shards = one_shard_per_primary(cluster_client)
    assert len(shards) == 3
    for port, shard in shards.items():
        key = keyspace.quota(shard, marker)
        assert await hot.execute_on(key, "SET", key, port, "EX", 60) == b"OK"
        node = cluster_client.get_node(host="127.0.0.1", port=port)
        assert int(await cluster_client.execute_command("GET", key, target_nodes=node)) == port


async def test_a_stale_slot_map_is_corrected_by_the_moved_reply(
    hot: HotCluster, cluster_client: RedisCluster
) -> None:
    """As after a failover or a resharding: the map the client holds names the wrong node for
    every slot; each command is redirected (MOVED), the map reloaded, and runs exactly once."""
    marker = str(uuid.uuid4())
    shards = list(one_shard_per_primary(cluster_client).values())
    await hot.execute_on(keyspace.shard_tag(0), "PING")  # the map is loaded
    owners = sorted({a for a in hot._slots if a is not None})
    rotate = {a: owners[(i + 1) % len(owners)] for i, a in enumerate(owners)}
    for shard in shards:
        # Every slot's owner replaced by the next primary's: all three wrong.
        hot._slots = [rotate[a] if a is not None else None for a in hot._slots]
        key = keyspace.quota(shard, marker)
        owner = ("127.0.0.1", cluster_client.get_node_from_key(key).port)
        assert hot._slots[key_slot(key.encode())] != owner
        assert await hot.execute_on(key, "INCR", key) == 1
        assert hot._slots[key_slot(key.encode())] == owner
        assert int(await cluster_client.get(key)) == 1
        await cluster_client.delete(key)


async def test_scripts_a_primary_lost_are_loaded_again_on_it(
    hot: HotCluster, cluster_client: RedisCluster
) -> None:
    scripts = HotScripts(hot)
    fill = scripts["fill_record"]
    marker = str(uuid.uuid4())
    shards = list(one_shard_per_primary(cluster_client).values())
    records = [keyspace.user_record(shard, marker) for shard in shards]
    for record in records:
        assert await fill(keys=[record], args=[60, "status", "ok"]) == 1
    # What a primary's restart does to its scripts: on every primary.
    for node in cluster_client.get_primaries():
        await cluster_client.execute_command("SCRIPT", "FLUSH", target_nodes=node)
    sha = hashlib.sha1(read_lua_sources()["fill_record"].encode()).hexdigest()
    assert await cluster_client.script_exists(sha) == [False]
    for record in records:
        assert await fill(keys=[record], args=[60, "status", "ok"]) == 0  # ran: already filled
        assert await cluster_client.hget(record, "status") == b"ok"


async def test_a_command_on_a_slot_being_migrated_follows_the_ask_redirect(
    hot: HotCluster, cluster_client: RedisCluster
) -> None:
    """Resharding (adding a primary): while a slot moves, its old node answers ASK for the
    keys it no longer has, and the command goes to the new node after ASKING."""
    shard_slots = {key_slot(keyspace.shard_tag(s).encode()) for s in range(SHARD_COUNT)}
    key = next(
        name for n in range(10_000)
        if key_slot((name := f"hot:{{ask{n}}}:{uuid.uuid4().hex}").encode()) not in shard_slots
    )  # fmt: skip
    slot = key_slot(key.encode())
    source = cluster_client.get_node_from_key(key)
    target = next(node for node in cluster_client.get_primaries() if node.port != source.port)
    ids = {
        node.port: (await cluster_client.execute_command("CLUSTER", "MYID", target_nodes=node))
        for node in cluster_client.get_primaries()
    }

    async def setslot(node: object, *how: object) -> None:
        await cluster_client.execute_command("CLUSTER", "SETSLOT", slot, *how, target_nodes=node)

    await hot.execute_on(key, "PING")  # the map is loaded: the slot is the source's
    await setslot(target, "IMPORTING", ids[source.port])
    await setslot(source, "MIGRATING", ids[target.port])
    try:
        assert await hot.execute_on(key, "SET", key, "moved-in", "EX", 60) == b"OK"
    finally:  # the move completes, then the slot goes back to where it was
        for node in (target, source, *cluster_client.get_primaries()):
            await setslot(node, "NODE", ids[target.port])
        landed = await cluster_client.execute_command("GET", key, target_nodes=target)
        await cluster_client.execute_command("DEL", key, target_nodes=target)
        for node in (target, *cluster_client.get_primaries()):
            await setslot(node, "NODE", ids[source.port])
    assert landed == b"moved-in"  # on the node the slot was moving to
