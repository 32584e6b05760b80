"""A primary of the Redis Cluster killed under the gateway (REDIS_CLUSTER=true), on a cluster
of its own (the test kills one of its processes with SIGKILL and starts it again).

Calls of users whose shard that primary held fail cleanly: 503 with code 50302 in the
envelope, nothing reserved, nothing billed. Users on the other two primaries go on being
served (the nodes run `cluster-require-full-coverage no`; with the default every node answers
CLUSTERDOWN once the dead one is marked failed, ~2 s), even when their agent's record was on
the dead primary (admission stands on the record as last read, gateway/sharded_admission.py),
and the gateway and the control plane stay ready (/readyz).
Once the primary is back (its append-only file restores its keys), its users are served again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster

from common import keyspace
from common.redis_store import create_redis
from devstack.servers import ValkeyCluster
from tests.gateway.helpers import (
    Caller,
    assert_error,
    chat,
    gateway,
    make_caller,
    quota_units,
    wait_for_events,
)
from tests.processes import cluster_client_of, serve_api, serve_valkey_cluster


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[ValkeyCluster]:
    """A cluster of this module's own, durable: a primary it kills restarts with its data."""
    with serve_valkey_cluster(durable=True) as nodes:
        yield nodes


@pytest_asyncio.fixture(scope="module")
async def own_client(own_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    async with cluster_client_of(own_cluster) as client:
        yield client


@pytest.fixture(scope="module")
def faults_gateway(gateway_env: dict[str, str], own_cluster: ValkeyCluster) -> Iterator[str]:
    with gateway(gateway_env, REDIS_URL=own_cluster.url, REDIS_CLUSTER="true") as url:
        yield url


@pytest.fixture(scope="module")
def faults_control(control_env: dict[str, str], own_cluster: ValkeyCluster) -> Iterator[str]:
    with serve_api(control_env | {"REDIS_URL": own_cluster.url, "REDIS_CLUSTER": "true"}) as url:
        yield url


def port_of(redis: RedisCluster, key: str) -> int:
    return int(redis.get_node_from_key(key).port)


async def cluster_sees_failed(cluster: ValkeyCluster, dead: int, within_s: float = 15) -> None:
    """Until a live primary has marked `dead` as failed (and still says cluster_state:ok)."""
    live = next(port for port in cluster.ports if port != dead)
    client = create_redis(f"redis://127.0.0.1:{live}/0")
    deadline = time.monotonic() + within_s
    try:
        while True:
            nodes = (await client.execute_command("CLUSTER", "NODES")).decode()
            info = (await client.execute_command("CLUSTER", "INFO")).decode()
            line = next(line for line in nodes.splitlines() if f":{dead}@" in line)
            if " fail " in f" {line.split()[2].replace(',', ' ')} ":
                assert "cluster_state:ok" in info, info
                return
            assert time.monotonic() < deadline, nodes
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


async def test_a_killed_primary_fails_its_users_calls_cleanly_and_they_recover(
    faults_gateway: str,
    faults_control: str,
    db_pool: asyncpg.Pool,
    own_cluster: ValkeyCluster,
    own_client: RedisCluster,
) -> None:
    # A developer on each primary, each calling an agent whose record is on the first one
    # (the one killed): the record's read fails too, for everyone.
    victim = own_cluster.ports[0]
    by_port: dict[int, Caller] = {}
    while len(by_port) < 3:
        caller = await make_caller(db_pool, quota=50, trials_used=3)
        if port_of(own_client, keyspace.agent_record(caller.agent.agent_id)) != victim:
            continue
        by_port.setdefault(port_of(own_client, keyspace.shard_tag(caller.shard)), caller)
    hit, spared = by_port[victim], [c for p, c in by_port.items() if p != victim]

    async with httpx.AsyncClient(timeout=30) as client:
        for caller in by_port.values():  # warm: records loaded, agent fields read
            assert (await chat(client, faults_gateway, caller)).status_code == 200
        for caller in by_port.values():
            await wait_for_events(own_client, caller, 1)

        node = next(n for n in own_cluster.nodes if n.port == victim)
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(10)
        await cluster_sees_failed(own_cluster, victim)

        # Still ready: taking the pods out of service would fail everyone's calls.
        for url in (faults_gateway, faults_control):
            ready = await client.get(f"{url}/readyz")
            assert ready.status_code == 200, (url, ready.text)
        for stream in (False, True, False):
            assert_error(await chat(client, faults_gateway, hit, stream=stream), 503, "50302")
        for caller in spared:
            for stream in (False, True):
                response = await chat(client, faults_gateway, caller, stream=stream)
                assert response.status_code == 200, response.text
        for caller in spared:  # billed once per call, on their own primaries
            assert len(await wait_for_events(own_client, caller, 3)) == 3
            assert await quota_units(own_client, caller) == 47
        # A developer Redis has never seen, on a primary that lost its scripts meanwhile (as
        # its restart would): the cold load runs its scripts there, whatever the dead one.
        newcomer = await make_caller(db_pool, quota=50, trials_used=3)
        while {
            port_of(own_client, keyspace.shard_tag(newcomer.shard)),
            port_of(own_client, keyspace.agent_record(newcomer.agent.agent_id)),
        } & {victim}:
            newcomer = await make_caller(db_pool, quota=50, trials_used=3)  # fmt: skip
        home = own_client.get_node_from_key(keyspace.shard_tag(newcomer.shard))
        await own_client.execute_command("SCRIPT", "FLUSH", target_nodes=home)
        response = await chat(client, faults_gateway, newcomer)
        assert response.status_code == 200, response.text

        node.start()  # the same port, data folder and nodes.conf: it rejoins with its slots
        deadline = time.monotonic() + 30
        while True:
            response = await chat(client, faults_gateway, hit)
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            assert_error(response, 503, "50302")
            await asyncio.sleep(0.2)
        assert response.status_code == 200, response.text
    # The refused calls reserved nothing: the warm-up call and the one after recovery only.
    events = await wait_for_events(own_client, hit, 2)
    assert [(e["billable"], e["units"]) for e in events] == [("1", "1"), ("1", "1")]
    assert await quota_units(own_client, hit) == 48
    reservations = await own_client.hvals(keyspace.reservations(hit.shard))
    assert not [r for r in reservations if r.startswith(hit.developer.user_id.encode())]
