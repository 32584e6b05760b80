"""Admin system operations over real HTTP: the health report, the metrics page, and clearing
the gateway's record cache (records go, live counters stay, the gateway reloads cold)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import asyncpg
import httpx
from redis.asyncio.cluster import RedisCluster

from common import keyspace
from common.migrations import default_directory, load_migrations
from common.redis_store import RedisClient, create_redis
from control_plane.admin import system
from control_plane.gateway_sync import hold_write_through
from control_plane.state import ControlPlaneState
from control_plane.usage_ingest import DEAD_LETTER_STREAM
from crypto.api_keys import SHARD_COUNT
from devstack.servers import free_port
from tests.control_plane.admin.support import Admin, Gateways, audit_rows
from tests.control_plane.api_client import assert_error
from tests.control_plane.conftest import Backend
from tests.factories import make_account, make_agent

S = "/api/v1/admin/system"


async def test_health_reports_postgres_redis_migrations_and_the_usage_backlog(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, gateways: Gateways, super_admin: Admin
) -> None:
    # A call leaves a usage event in its shard's stream (no worker runs in this session).
    account, agent = await make_account(db_pool), await make_agent(db_pool)
    redis = gateways.redis
    first = gateways.urls[0]
    assert (await gateways.chat(first, agent.agent_id, account.key.plaintext)).status_code == 200

    response = await client.get(f"{S}/health", headers=super_admin.headers)
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["postgres"]["status"] == "ok"
    assert health["redis"]["status"] == "ok"
    assert health["redis"]["details"]["maxmemory_policy"] == "noeviction"
    migrations = load_migrations(default_directory())
    assert health["migrations"]["status"] == "ok"
    assert health["migrations"]["details"]["applied"] == len(migrations)
    assert health["migrations"]["details"]["pending"] == []
    async with redis.pipeline(transaction=False) as pipe:
        for stream in keyspace.all_usage_streams():
            pipe.xlen(stream)
        expected = sum(await pipe.execute())
    backlog = health["usage_backlog"]
    assert backlog["details"]["events"] == expected >= 1
    assert backlog["details"]["streams"] == 1024
    assert backlog["details"]["dead_lettered"] == await redis.xlen(DEAD_LETTER_STREAM)
    assert health["status"] in {"ok", "degraded"}
    for check in ("postgres", "redis", "migrations", "usage_backlog"):
        assert health[check]["latency_ms"] >= 0


async def test_metrics_page(client: httpx.AsyncClient, super_admin: Admin) -> None:
    response = await client.get(f"{S}/metrics", headers=super_admin.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


async def test_cache_clear_drops_records_keeps_live_state_and_the_gateway_reloads(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, gateways: Gateways, super_admin: Admin
) -> None:
    account, agent = await make_account(db_pool, quota=50), await make_agent(db_pool)
    developer, key = account.developer, account.key
    redis, first = gateways.redis, gateways.urls[0]
    for _ in range(4):  # 3 free trial calls, then 1 unit of quota
        assert (await gateways.chat(first, agent.agent_id, key.plaintext)).status_code == 200
    shard, user_id = developer.shard, developer.user_id
    records = [keyspace.api_key_record(shard, key.key_hash), keyspace.user_record(shard, user_id),
               keyspace.agent_record(agent.agent_id)]  # fmt: skip
    live = [keyspace.quota(shard, user_id), keyspace.trials(shard, user_id),
            keyspace.rate_window(shard, user_id), keyspace.usage_stream(shard)]  # fmt: skip
    assert await redis.exists(*records) == 3
    assert await redis.exists(*live) == 4
    assert await redis.get(keyspace.quota(shard, user_id)) == b"49"
    await redis.set("rl-lookalike:not-ours", "1")  # matches no clearable pattern

    response = await client.post(f"{S}/cache/clear", headers=super_admin.headers)
    assert response.status_code == 200, response.text
    cleared = response.json()
    assert set(cleared["deleted"]) == {"api_keys", "users", "agents"}
    assert all(count >= 1 for count in cleared["deleted"].values())
    assert cleared["total"] == sum(cleared["deleted"].values())
    assert await redis.exists(*records) == 0
    assert await redis.exists(*live) == 4
    assert await redis.get(keyspace.quota(shard, user_id)) == b"49"
    assert await redis.hget(keyspace.trials(shard, user_id), agent.agent_id) == b"3"
    assert await redis.get("rl-lookalike:not-ours") == b"1"
    await redis.delete("rl-lookalike:not-ours")

    # Cold reload: the records come back from Postgres, the balance continues from Redis.
    assert await gateways.statuses(account, agent) == [200, 200]
    assert await redis.exists(*records) == 3
    assert await redis.get(keyspace.quota(shard, user_id)) == b"47"

    rows = await audit_rows(db_pool, target_id="cache", action="system.cache_clear")
    assert str(rows[-1]["actor_id"]) == super_admin.user_id
    assert rows[-1]["details"]["deleted"] == cleared["deleted"]


async def test_cache_clear_waits_for_an_in_flight_write_through(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, super_admin: Admin
) -> None:
    """A record written inside an uncommitted transaction must not be cleared before the
    commit (a gateway would reload the old row and cache it for a day)."""
    async with db_pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        await hold_write_through(connection)
        clear = asyncio.create_task(client.post(f"{S}/cache/clear", headers=super_admin.headers))
        await asyncio.sleep(0.5)
        assert not clear.done()
        await transaction.commit()
        response = await asyncio.wait_for(clear, 10)
    assert response.status_code == 200


async def test_system_routes_are_for_super_admins_only(
    client: httpx.AsyncClient, moderator: Admin
) -> None:
    for method, path in (("GET", "/health"), ("POST", "/cache/clear"), ("GET", "/metrics")):
        response = await client.request(method, S + path, headers=moderator.headers)
        assert_error(response, 403, "40301")


async def test_health_reports_a_redis_outage_instead_of_failing(
    control_state: ControlPlaneState,
) -> None:
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    try:
        report = await system.health(dataclasses.replace(control_state, redis=dead))
    finally:
        await dead.aclose()
    assert report.postgres.status == "ok"
    assert report.redis.status == "unavailable"
    assert report.usage_backlog.status == "unavailable"
    assert report.status == "unavailable"


def spread_shards(redis: RedisClient) -> list[int]:
    """Shards whose keys are on every primary of a cluster (on a single node: any three)."""
    if not isinstance(redis, RedisCluster):
        return [0, 511, 1023]
    by_node = {redis.get_node_from_key(keyspace.shard_tag(s)).name: s for s in range(SHARD_COUNT)}
    return sorted(by_node.values())


async def test_cache_clear_reaches_every_primary_and_keeps_live_state(
    backend: Backend, super_admin: Admin
) -> None:
    """On a cluster the SCAN runs on each primary and the deletes go out per slot: records of
    users and agents on every primary go, the live balances and streams stay."""
    redis, marker = backend.redis, uuid.uuid4().hex
    records, balances, trials = [], [], []
    for shard in spread_shards(redis):
        user_id, agent_id = f"{marker}-{shard}", str(uuid.uuid4())
        records += [keyspace.api_key_record(shard, marker), keyspace.user_record(shard, user_id),
                    keyspace.agent_record(agent_id)]  # fmt: skip
        balances.append(keyspace.quota(shard, user_id))
        trials.append(keyspace.trials(shard, user_id))
    for key in records:
        await redis.hset(key, "status", "ok")
    for key in balances:
        await redis.set(key, 7)
    for key in trials:
        await redis.hset(key, "agent", 1)
    live = balances + trials
    if isinstance(redis, RedisCluster):  # the records are on all three primaries
        assert len({redis.get_node_from_key(key).name for key in records}) == 3

    response = await backend.http.post(f"{S}/cache/clear", headers=super_admin.headers)

    assert response.status_code == 200, response.text
    deleted = response.json()["deleted"]
    assert await redis.exists(*records) == 0
    assert await redis.exists(*live) == len(live)
    per_kind = len(records) // 3
    if backend.kind == "cluster":  # the emptied cluster holds only this test's records
        assert deleted == {"api_keys": per_kind, "users": per_kind, "agents": per_kind}
    else:
        assert all(count >= per_kind for count in deleted.values())


async def test_health_sums_the_usage_backlog_of_every_primary(
    backend: Backend, super_admin: Admin
) -> None:
    redis = backend.redis
    for n, shard in enumerate(spread_shards(redis)):
        for _ in range(n + 1):
            await redis.xadd(keyspace.usage_stream(shard), {"call_id": uuid.uuid4().hex})
    async with redis.pipeline(transaction=False) as pipe:
        for stream in keyspace.all_usage_streams():
            pipe.xlen(stream)
        expected = sum(await pipe.execute())

    response = await backend.http.get(f"{S}/health", headers=super_admin.headers)

    assert response.status_code == 200, response.text
    health = response.json()
    assert health["redis"]["status"] == "ok", health["redis"]
    assert health["redis"]["details"]["maxmemory_policy"] == "noeviction"
    assert health["usage_backlog"]["details"]["events"] == expected >= 6
    assert health["redis"]["details"]["primaries"] == (3 if backend.kind == "cluster" else 1)


async def test_health_is_degraded_when_any_primary_may_evict(
    cluster_redis: RedisCluster, cluster_control_url: str, super_admin: Admin
) -> None:
    """Eviction would lose live balances: one primary of three set to evict is enough."""
    one = cluster_redis.get_primaries()[1]
    await cluster_redis.config_set("maxmemory-policy", "allkeys-lru", target_nodes=one)
    try:
        async with httpx.AsyncClient(base_url=cluster_control_url, timeout=30) as http:
            response = await http.get(f"{S}/health", headers=super_admin.headers)
    finally:
        await cluster_redis.config_set("maxmemory-policy", "noeviction", target_nodes=one)
    assert response.status_code == 200, response.text
    redis = response.json()["redis"]
    assert (redis["status"], redis["details"]["maxmemory_policy"]) == ("degraded", "mixed")
