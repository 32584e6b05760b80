"""The gateway on a Redis Cluster (REDIS_CLUSTER=true), on a real 3-primary Valkey cluster:
admission on the user's shard with the agent record read beside it
(gateway/sharded_admission.py), end to end with the openai SDK over real HTTP."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from common import keyspace
from common.redis_store import read_lua_sources
from tests.gateway.helpers import (
    Caller,
    assert_error,
    chat,
    gateway,
    make_caller,
    quota_units,
    trials_used,
    usage_events,
    wait_for_events,
)


@pytest.fixture(scope="module")
def cluster_gateway(cluster_gateway_env: dict[str, str]) -> Iterator[str]:
    with gateway(cluster_gateway_env) as url:
        yield url


def primary_of(redis: RedisCluster, caller: Caller) -> int:
    return int(redis.get_node_from_key(keyspace.shard_tag(caller.shard)).port)


async def callers_on_every_primary(db: asyncpg.Pool, redis: RedisCluster) -> list[Caller]:
    """One fresh developer (key, agent) whose shard is on each primary."""
    found: dict[int, Caller] = {}
    while len(found) < len(redis.get_primaries()):
        caller = await make_caller(db, quota=20, trials_used=3)
        found.setdefault(primary_of(redis, caller), caller)
    return list(found.values())


async def taken_back(client: httpx.AsyncClient, url: str) -> float:
    """The gateway's count of admissions given back (its /metrics)."""
    metrics = (await client.get(f"{url}/metrics")).text
    name = "agentlink_gateway_admissions_taken_back_total"
    match = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def sdk(base_url: str, caller: Caller) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{base_url}/proxy/v1/agents/{caller.agent.agent_id}",
        api_key=caller.key.plaintext,
        max_retries=0,
    )


def test_the_sharded_admission_is_admit_lua_with_the_agent_from_its_arguments() -> None:
    """One script, written once: admit_sharded differs from admit.lua in the one line that
    reads the agent record, and names no key but its first ten (all in the user's slot)."""
    sources = read_lua_sources()
    admit, sharded = sources["admit"].splitlines(), sources["admit_sharded"].splitlines()
    assert len(admit) == len(sharded)
    changed = [(a, b) for a, b in zip(admit, sharded, strict=True) if a != b]
    assert changed == [
        (
            'local agent = redis.call("HMGET", KEYS[8], "status", "version", "units", "knowledge")',
            "local agent = {ARGV[11], ARGV[12], ARGV[13], ARGV[14]}",
        )
    ]
    assert "KEYS[8]" not in "\n".join(line for line in sharded if not line.startswith("--"))


async def test_calls_of_users_on_all_three_primaries_are_served_and_billed_on_their_shard(
    cluster_gateway: str, db_pool: asyncpg.Pool, cluster_client: RedisCluster
) -> None:
    callers = await callers_on_every_primary(db_pool, cluster_client)
    for caller in callers:
        async with sdk(cluster_gateway, caller) as client:
            for _ in range(2):
                completion = await client.chat.completions.create(
                    model="x", messages=[{"role": "user", "content": "hi"}]
                )
                assert completion.choices[0].message.content == "Mock reply to: hi"
        events = await wait_for_events(cluster_client, caller, 2)
        assert [(e["billable"], e["charge"], e["units"]) for e in events] == [
            ("1", "quota", "1")
        ] * 2
        assert await quota_units(cluster_client, caller) == 18
        # The balance and the stream live on the primary of the user's shard, nowhere else.
        node = cluster_client.get_node(host="127.0.0.1", port=primary_of(cluster_client, caller))
        quota = keyspace.quota(caller.shard, caller.developer.user_id)
        assert int(await cluster_client.execute_command("GET", quota, target_nodes=node)) == 18
    slots = {key_slot(keyspace.shard_tag(c.shard).encode()) for c in callers}
    assert len(slots) == len(callers)
    assert len({primary_of(cluster_client, c) for c in callers}) == 3


async def test_an_agent_unpublished_since_the_last_read_is_404_and_costs_nothing(
    cluster_gateway: str, db_pool: asyncpg.Pool, cluster_client: RedisCluster
) -> None:
    """The gateway admits on the agent fields it read last and reads the record at the same
    time: an unpublish in between is caught by that read, the admission is taken back (units,
    trial and rate slot returned, no usage event) and the answer is one Redis's: 404."""
    caller = await make_caller(db_pool, quota=10)
    record = keyspace.agent_record(caller.agent.agent_id)
    rate_window = keyspace.rate_window(caller.shard, caller.developer.user_id)
    async with httpx.AsyncClient() as client:
        assert (await chat(client, cluster_gateway, caller)).status_code == 200  # a trial
        await wait_for_events(cluster_client, caller, 1)
        await db_pool.execute(
            "UPDATE agents SET status = 'inactive' WHERE id = $1", caller.agent.agent_id
        )
        await cluster_client.hset(record, "status", "inactive")
        before = await taken_back(client, cluster_gateway)
        for _ in range(2):
            assert_error(await chat(client, cluster_gateway, caller), 404, "40401")
        # The first was admitted on "active" and given back; the second decided on "inactive".
        assert await taken_back(client, cluster_gateway) == before + 1
        assert await trials_used(cluster_client, caller) == 1
        assert await cluster_client.zcard(rate_window) == 1
        assert len(await usage_events(cluster_client, caller)) == 1
        # Published again: the fields read last say inactive, the read says active, so the
        # refusal is decided again and the call admitted.
        await cluster_client.hset(record, "status", "active")
        assert (await chat(client, cluster_gateway, caller)).status_code == 200
    assert await trials_used(cluster_client, caller) == 2
    assert len(await wait_for_events(cluster_client, caller, 2)) == 2


async def test_a_new_price_applies_to_the_next_call(
    cluster_gateway: str, db_pool: asyncpg.Pool, cluster_client: RedisCluster
) -> None:
    caller = await make_caller(db_pool, quota=20, trials_used=3)
    record = keyspace.agent_record(caller.agent.agent_id)
    async with httpx.AsyncClient() as client:
        first = await chat(client, cluster_gateway, caller)
        assert first.headers["x-agentlink-units"] == "1"
        await cluster_client.hset(record, "units", 5)  # what a price change writes
        second = await chat(client, cluster_gateway, caller)
    assert second.status_code == 200, second.text
    assert second.headers["x-agentlink-units"] == "5"
    assert second.headers["x-quota-remaining"] == "14"
    events = await wait_for_events(cluster_client, caller, 2)
    assert [e["units"] for e in events] == ["1", "5"]
    assert await quota_units(cluster_client, caller) == 14
    reservations = await cluster_client.hvals(keyspace.reservations(caller.shard))
    assert not [r for r in reservations if r.startswith(caller.developer.user_id.encode())]


async def test_an_unknown_agent_is_404_on_the_cluster(
    cluster_gateway: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        for agent_id in (str(uuid.uuid4()), "not-a-uuid"):
            assert_error(
                await chat(client, cluster_gateway, caller, agent_id=agent_id), 404, "40401"
            )


# A step of the property below: a call, or what the control plane writes to the agent record.
CHANGES = {"unpublish": ("status", "inactive"), "publish": ("status", "active"),
           "price 1": ("units", "1"), "price 3": ("units", "3")}  # fmt: skip


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.sampled_from(["call", "call", *CHANGES]), min_size=1, max_size=12))
async def test_property_sharded_admission_answers_what_one_redis_would(
    cluster_gateway: str, db_pool: asyncpg.Pool, cluster_client: RedisCluster, steps: list[str]
) -> None:
    """Property (sharded admission, gateway/sharded_admission.py): whatever the agent record
    went through between calls (unpublished, published again, repriced), each call gets the
    answer one Redis would give on the record as it is now: 404 while unpublished, 429 when
    the quota is short of the price, else admitted at the current price. Admissions taken back
    leave nothing behind: the quota, the usage events and the rate window count only the calls
    that were answered."""
    caller = await make_caller(db_pool, quota=7, tier="paid", trials_used=3)
    record = keyspace.agent_record(caller.agent.agent_id)
    status, units, quota, charged = "active", 1, 7, []
    # The first call loads the record, which the changes then edit (as the control plane
    # does: it writes whole records, never a status alone into a record Redis lacks).
    async with httpx.AsyncClient(timeout=30) as client:
        for step in ["call", *steps]:
            if step in CHANGES:
                field, value = CHANGES[step]
                await cluster_client.hset(record, field, value)
                status, units = (value, units) if field == "status" else (status, int(value))
                continue
            response = await chat(client, cluster_gateway, caller)
            if status != "active":
                assert_error(response, 404, "40401")
            elif quota < units:
                assert_error(response, 429, "42901")
            else:
                assert response.status_code == 200, response.text
                assert response.headers["x-agentlink-units"] == str(units)
                quota -= units
                charged.append(str(units))
    events = await wait_for_events(cluster_client, caller, len(charged))
    assert [event["units"] for event in events] == charged
    assert await quota_units(cluster_client, caller) == quota
    rate_window = keyspace.rate_window(caller.shard, caller.developer.user_id)
    assert await cluster_client.zcard(rate_window) == len(charged)
    reservations = await cluster_client.hvals(keyspace.reservations(caller.shard))
    assert not [r for r in reservations if r.startswith(caller.developer.user_id.encode())]
