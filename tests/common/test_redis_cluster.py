"""The Redis Cluster groundwork (issue 13), on a real 3-primary Valkey cluster that the test
bootstrap starts from the same Valkey binary (devstack/servers.py ValkeyCluster).

What holds already: the keyspace's hash tags put everything a user owns in the slot of its
shard `{sS}`, so the scripts that work on a user's shard (commit, reap, load_quota,
adjust_quota) each touch one slot, and run on the cluster through redis-py's cluster client
with the project's own key builders. REDIS_CLUSTER=true makes `create_redis` build that
cluster client (with the single-node client's timeouts). admit.lua also
reads the agent record, which lives under its own tag `{aID}`, so in cluster mode the gateway
runs admit_sharded and reads that record beside it (DESIGN.md "Scaling past one Redis
primary"; the last test pins it; gateway/sharded_admission.py).
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from common import keyspace
from common.redis_store import LuaScripts, close_redis, create_redis
from common.settings import StorageSettings
from crypto.api_keys import SHARD_COUNT
from devstack.servers import ValkeyCluster
from tests.processes import CLUSTER_PRIMARIES, serve_valkey_cluster


@pytest_asyncio.fixture
async def client(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    storage = StorageSettings.from_env(
        {
            "DATABASE_URL": "postgresql://unused",
            "REDIS_URL": valkey_cluster.url,
            "REDIS_CLUSTER": "true",
        }
    )
    redis = create_redis(storage.redis_url, cluster=storage.redis_cluster, socket_timeout_s=5.0)
    assert isinstance(redis, RedisCluster)
    await redis.initialize()  # learn the nodes and their slots
    try:
        yield redis
    finally:
        await close_redis(redis)


def slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def user_keys(shard: int, user_id: str, key_hash: str) -> list[str]:
    return [
        keyspace.api_key_record(shard, key_hash), keyspace.user_record(shard, user_id),
        keyspace.quota(shard, user_id), keyspace.quota_adjustments(shard, user_id),
        keyspace.trials(shard, user_id), keyspace.rate_window(shard, user_id),
        keyspace.reservations(shard),
        keyspace.reservation_deadlines(shard), keyspace.key_rate_window(shard, key_hash),
        keyspace.key_spend(shard), keyspace.usage_stream(shard),
        keyspace.quota_prefix(shard) + user_id, keyspace.trials_prefix(shard) + user_id,
    ]  # fmt: skip


async def test_the_bootstrap_starts_three_primaries_that_share_every_slot(
    valkey_cluster: ValkeyCluster, client: RedisCluster
) -> None:
    primaries = client.get_primaries()
    assert sorted(node.port for node in primaries) == sorted(valkey_cluster.ports)
    info = await client.cluster_info()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384
    # The 1,024 user shards spread over all three primaries.
    owners = {client.get_node_from_key(keyspace.shard_tag(s)).port for s in range(SHARD_COUNT)}
    assert owners == set(valkey_cluster.ports)


async def test_redis_cluster_true_gives_a_client_that_reaches_every_primary(
    client: RedisCluster,
) -> None:
    """The factory's client (REDIS_CLUSTER=true) routes each key to the primary owning its
    slot: one key per shard, on all three primaries, written and read back in one call each."""
    owner_of = {s: client.get_node_from_key(keyspace.shard_tag(s)).port for s in range(SHARD_COUNT)}
    one_per_primary = {port: shard for shard, port in owner_of.items()}
    assert len(one_per_primary) == CLUSTER_PRIMARIES
    marker = str(uuid.uuid4())
    for port, shard in one_per_primary.items():
        key = keyspace.quota(shard, marker)
        await client.set(key, port, ex=60)
        assert int(await client.get(key)) == port
        # The value really is on that node, not proxied: ask the node itself.
        node = client.get_node(port=port, host="127.0.0.1")
        assert node is not None
        assert int(await client.execute_command("GET", key, target_nodes=node)) == port


def test_the_single_node_factory_is_unchanged_by_the_cluster_flag() -> None:
    storage = StorageSettings.from_env({"DATABASE_URL": "postgresql://x", "REDIS_URL": "redis://y"})
    assert storage.redis_cluster is False
    assert not isinstance(create_redis("redis://127.0.0.1:1/0"), RedisCluster)


@settings(max_examples=200, deadline=None)
@given(shard=st.integers(0, SHARD_COUNT - 1), user=st.uuids(), key_hash=st.text("0123456789abcdef",
       min_size=64, max_size=64))  # fmt: skip
def test_property_everything_a_user_owns_is_in_one_cluster_slot(
    shard: int, user: uuid.UUID, key_hash: str
) -> None:
    """No per-user script touches two slots: every key a user's scripts name (and the ones
    reap.lua completes from the prefixes) hashes to the slot of the shard's tag."""
    assert slots(user_keys(shard, str(user), key_hash)) == {
        key_slot(keyspace.shard_tag(shard).encode())
    }


async def test_the_shard_scripts_run_on_the_cluster_with_the_project_keys(
    client: RedisCluster,
) -> None:
    """Each per-shard script, called as the code calls it, runs on whichever primary holds
    the shard (a script naming keys of two slots would be refused: CROSSSLOT)."""
    scripts = LuaScripts(client)
    user_id = str(uuid.uuid4())
    shards = (0, 511, 1023)
    nodes = {client.get_node_from_key(keyspace.shard_tag(s)).port for s in shards}
    assert len(nodes) == CLUSTER_PRIMARIES  # one shard on each primary
    for shard in shards:
        balance = [keyspace.quota(shard, user_id), keyspace.quota_adjustments(shard, user_id)]
        assert await scripts["load_quota"](keys=balance, args=[7, 0]) == 1
        status, applied = await scripts["adjust_quota"](keys=balance, args=["credit-1", 1, 5])
        assert (status, int(applied)) == (b"APPLIED", 5)
        assert int(await client.get(keyspace.quota(shard, user_id))) == 12
        settle = [keyspace.reservations(shard), keyspace.reservation_deadlines(shard),
                  keyspace.quota(shard, user_id), keyspace.trials(shard, user_id),
                  keyspace.usage_stream(shard), keyspace.key_spend(shard)]  # fmt: skip
        no_call = ["no-such-call", "0", "error", 0, 0, 0, "", "", 0]
        assert await scripts["commit"](keys=settle, args=no_call) == 0  # nothing reserved
        reap = [keyspace.reservations(shard), keyspace.reservation_deadlines(shard),
                keyspace.usage_stream(shard), keyspace.key_spend(shard)]  # fmt: skip
        prefixes = [keyspace.quota_prefix(shard), keyspace.trials_prefix(shard), 100]
        assert await scripts["reap"](keys=reap, args=prefixes) == 0


def test_admission_is_the_one_script_that_crosses_slots() -> None:
    """admit.lua reads the agent record, under the agent's own tag: so on a cluster the
    gateway runs admit_sharded, which takes the agent's fields as arguments, and reads the
    record beside it (DESIGN.md; tests/gateway/test_cluster_gateway.py)."""
    user_id, agent_id = str(uuid.uuid4()), str(uuid.uuid4())
    user_slot = slots(user_keys(5, user_id, "ab" * 32))
    assert len(user_slot) == 1
    assert slots([keyspace.agent_record(agent_id)]) != user_slot


def open_connections(client: RedisCluster) -> list[Connection]:
    nodes = [*client.nodes_manager.nodes_cache.values()]
    nodes += client.nodes_manager.startup_nodes.values()
    return [c for node in nodes for c in node._connections if c.is_connected]


async def test_close_redis_closes_a_cluster_client_whose_node_died() -> None:
    """redis-py 8.1's RedisCluster.aclose() closes nothing after a call failed on a node that
    died (a slot-map reload is pending then): the connections were left to the garbage
    collector, whose ResourceWarning failed a later test in CI. close_redis closes them all."""
    with serve_valkey_cluster() as cluster:
        client = create_redis(cluster.url, cluster=True, socket_timeout_s=2.0)
        assert isinstance(client, RedisCluster)
        await client.initialize()
        keys = {int(client.get_node_from_key(f"k{i}").port): f"k{i}" for i in range(64)}
        for key in keys.values():  # a connection to every primary
            await client.set(key, "1")
        victim = cluster.nodes[0]
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        with pytest.raises(RedisConnectionError):
            await client.get(keys[victim.port])

        await client.aclose()
        assert open_connections(client), "redis-py's aclose closes them now: drop close_redis"
        await close_redis(client)
        assert open_connections(client) == []
