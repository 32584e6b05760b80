"""The worker's Redis side on a real 3-primary Valkey cluster (issue 13, Redis Cluster mode):
the reaper reaches every shard's primary and gives back each reservation exactly once; the
usage streams of every primary are read (and claimed) per node, each event written once.

Until admission runs on the cluster, a call's reservation is left the way admit.lua leaves
it (the prelude's own reservation format); it is then settled by the gateway's real commit
(`Admitter.commit`, commit.lua) or reaped by the reaper, which write the usage events."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster

from common import keyspace
from common.redis_store import LuaScripts, lua_prelude
from common.usage_events import CallStatus
from control_plane.reaper import reap_expired
from control_plane.settings import UsageIngestSettings
from control_plane.usage_ingest import GROUP, UsageIngester
from crypto.api_keys import SHARD_COUNT
from devstack.servers import ValkeyCluster, free_port
from gateway.admission import Admission
from gateway.call_result import CallResult
from gateway.providers.base import Usage
from tests.control_plane.helpers import (
    Expected,
    Producer,
    assert_totals,
    call_log_rows,
)
from tests.control_plane.test_worker_process import Worker, count_rows, drained, hold_agent_row
from tests.factories import Account, Agent
from tests.processes import CLUSTER_PRIMARIES, worker_env
from tests.support import wait_until

# What admit.lua leaves for a call it charged to quota, in the prelude's own reservation
# format, with its deadline ARGV[7] ms from now (negative: past, the gateway "died").
# KEYS: resv:{sS}, resvq:{sS}, quota:{sS}:user
# ARGV: call id, user id, units, request id, agent id, key id, deadline offset ms
RESERVED = lua_prelude() + """
local now = now_ms()
redis.call("DECRBY", KEYS[3], ARGV[3])
redis.call("HSET", KEYS[1], ARGV[1], encode_reservation({
  user_id = ARGV[2], agent_id = ARGV[5], agent_version = "1", charge = "quota",
  units = ARGV[3], key_id = ARGV[6], admitted_ms = now - 5, request_id = ARGV[4], spend = "",
}))
redis.call("ZADD", KEYS[2], now + tonumber(ARGV[7]), ARGV[1])
return 1
"""  # fmt: skip


async def leave_reservations(
    redis: RedisCluster, reservations: dict[int, tuple[str, str]], units: int
) -> None:
    """One expired reservation per shard: shard -> (user id, call id)."""
    reserve = redis.register_script(RESERVED)

    async def one(shard: int, user_id: str, call_id: str) -> None:
        quota = keyspace.quota(shard, user_id)
        await redis.set(quota, 100)
        keys = [keyspace.reservations(shard), keyspace.reservation_deadlines(shard), quota]
        args = [call_id, user_id, units, f"client-{shard}", "agent-1", "key-1", -1]
        await reserve(keys=keys, args=args)

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


class ClusterCalls:
    """Calls of accounts on every primary to one agent, settled or reaped on the cluster,
    and what Postgres must then hold (`Expected`)."""

    def __init__(self, producer: Producer, redis: RedisCluster) -> None:
        self.producer = producer
        self.redis = redis
        self._reserve = redis.register_script(RESERVED)
        self.expected = Expected()
        self.accounts: list[Account] = []
        self.agent: Agent | None = None

    async def open_accounts(self) -> None:
        """Accounts until their shards are on every primary (a shard is drawn at random)."""
        self.agent = await self.producer.agent(price=Decimal("0.02"))  # 2 units a call
        nodes: set[str] = set()
        while len(nodes) < CLUSTER_PRIMARIES:
            account = await self.producer.account(quota=1000)
            await self.redis.set(self.quota_key(account), 1000)  # as the gateway loads it
            self.accounts.append(account)
            nodes.add(self.redis.get_node_from_key(self.quota_key(account)).name)

    @staticmethod
    def quota_key(account: Account) -> str:
        return keyspace.quota(account.developer.shard, account.developer.user_id)

    async def reserve(self, account: Account, *, deadline_ms: int) -> Admission:
        assert self.agent is not None
        shard, user_id = account.developer.shard, account.developer.user_id
        call_id = uuid.uuid4().hex
        keys = [keyspace.reservations(shard), keyspace.reservation_deadlines(shard),
                self.quota_key(account)]  # fmt: skip
        args = [call_id, user_id, 2, f"client-{call_id[:8]}", self.agent.agent_id,
                account.key.key_id, deadline_ms]  # fmt: skip
        await self._reserve(keys=keys, args=args)
        return Admission(
            call_id=call_id, shard=shard, user_id=user_id, key_id=account.key.key_id,
            agent_id=self.agent.agent_id, agent_version=1, rate_limit=0, rate_remaining=0,
            rate_reset_ms=0, quota_remaining=0, charge="quota", units=2,
        )  # fmt: skip

    async def make(self, per_account: int) -> None:
        """On every account: `per_account` committed calls (one in four failed, unbilled)."""
        assert self.agent is not None
        for account in self.accounts:
            for n in range(per_account):
                admission = await self.reserve(account, deadline_ms=60_000)
                billable = n % 4 != 3
                result = ANSWERED if billable else FAILED
                settled = await self.producer.admitter.commit(
                    admission, result, latency_ms=5, request_id=f"client-{n}"
                )
                assert settled
                self.expected.record(admission, self.agent, billable=billable)

    async def abandon(self) -> None:
        """One reservation past its deadline on every account, for the reaper."""
        assert self.agent is not None
        for account in self.accounts:
            admission = await self.reserve(account, deadline_ms=-1)
            self.expected.record(admission, self.agent, billable=False)

    async def assert_written_once(self, db: asyncpg.Pool) -> None:
        assert self.agent is not None
        await assert_totals(db, self.expected, self.accounts, [self.agent])
        for account in self.accounts:
            stream = keyspace.usage_stream(account.developer.shard)
            assert await self.redis.xlen(stream) == 0  # acknowledged and deleted
            (group,) = await self.redis.xinfo_groups(stream)
            assert group["pending"] == 0


ANSWERED = CallResult.answered(Usage(input_tokens=3, output_tokens=4))
FAILED = CallResult(
    CallStatus.ERROR, billable=False, http_status=502, error_code="50201", usage=None
)


@pytest_asyncio.fixture
async def cluster_calls(db_pool: asyncpg.Pool, cluster_redis: RedisCluster) -> ClusterCalls:
    scripts = LuaScripts(cluster_redis)
    calls = ClusterCalls(Producer(db_pool, cluster_redis, scripts), cluster_redis)  # type: ignore[arg-type]
    await calls.open_accounts()
    return calls


async def test_events_on_every_primary_are_ingested_once_on_the_cluster(
    db_pool: asyncpg.Pool, cluster_redis: RedisCluster, cluster_calls: ClusterCalls
) -> None:
    ingester = UsageIngester(cluster_redis, db_pool)
    await ingester.ensure_groups()  # on the streams of every primary
    await cluster_calls.make(per_account=8)
    await cluster_calls.abandon()
    reaped = await reap_expired(cluster_redis, cluster_calls.producer.scripts)
    assert reaped == len(cluster_calls.accounts)

    written = await ingester.drain()

    assert written == len(cluster_calls.expected.calls)
    await cluster_calls.assert_written_once(db_pool)
    assert await ingester.drain() == 0  # nothing is read twice
    assert (await ingester.sample_lag()).lag == 0


async def test_the_worker_loop_ingests_from_every_primary_and_stops(
    db_pool: asyncpg.Pool, cluster_redis: RedisCluster, cluster_calls: ClusterCalls
) -> None:
    """The long-running loop polls the primaries (USAGE_READ_BLOCK_MS apart when idle)."""
    usage = dataclasses.replace(UsageIngestSettings.from_env({}), read_block_ms=50)
    ingester = UsageIngester(cluster_redis, db_pool, settings=usage)
    stop = asyncio.Event()
    loop = asyncio.create_task(ingester.run(stop))
    await asyncio.sleep(0.2)  # idle polls first: nothing there yet
    await cluster_calls.make(per_account=4)

    async def all_written() -> bool:
        rows = await call_log_rows(db_pool, [a.developer.user_id for a in cluster_calls.accounts])
        return len(rows) == len(cluster_calls.expected.calls)

    await wait_until(all_written, 30, "every event in call_logs")
    stop.set()
    await asyncio.wait_for(loop, 5)
    await cluster_calls.assert_written_once(db_pool)


async def test_entries_a_dead_consumer_left_pending_are_claimed_on_every_primary(
    db_pool: asyncpg.Pool, cluster_redis: RedisCluster, cluster_calls: ClusterCalls
) -> None:
    dead = UsageIngester(cluster_redis, db_pool, consumer="dead-worker")
    await dead.ensure_groups()
    await cluster_calls.make(per_account=3)
    delivered = await dead.read_new(block_ms=None)  # ... and then it died, acknowledging none
    assert len(delivered) == len(cluster_calls.expected.calls)
    assert await dead.read_new(block_ms=None) == []  # delivered: no longer new

    survivor = UsageIngester(cluster_redis, db_pool, consumer="survivor")
    assert await survivor.claim_stale(min_idle_ms=0) == len(delivered)

    await cluster_calls.assert_written_once(db_pool)
    # The dead consumer, with nothing pending now, is forgotten on every primary's streams.
    sweeper = dataclasses.replace(UsageIngestSettings.from_env({}), consumer_idle_delete_s=0)
    await asyncio.sleep(0.01)
    forgotten = await UsageIngester(
        cluster_redis, db_pool, settings=sweeper
    ).forget_idle_consumers()
    shards = {account.developer.shard for account in cluster_calls.accounts}
    assert forgotten >= len(shards)
    for shard in shards:
        consumers = await cluster_redis.xinfo_consumers(keyspace.usage_stream(shard), GROUP)
        assert "dead-worker" not in {consumer["name"].decode() for consumer in consumers}


async def has_pending(redis: RedisCluster, shards: set[int]) -> bool:
    for shard in shards:
        if (await redis.xpending(keyspace.usage_stream(shard), GROUP))["pending"]:
            return True
    return False


async def at_least(db: asyncpg.Pool, user_ids: list[str], count: int) -> bool:
    return await count_rows(db, user_ids) >= count


def metric(text: str, name: str) -> float:
    (value,) = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
    return value


async def test_the_worker_process_on_the_cluster_survives_sigkill_and_bills_once(  # noqa: PLR0917
    db_pool: asyncpg.Pool,
    cluster_redis: RedisCluster,
    cluster_calls: ClusterCalls,
    valkey_cluster: ValkeyCluster,
    database_url: str,
    tmp_path: Path,
) -> None:
    """`python -m control_plane.worker` with REDIS_CLUSTER=true: SIGKILLed with a batch read
    and not acknowledged, restarted; every event of every primary is in call_logs once, the
    killed worker's batch claimed, and the reservations left past their deadline reaped."""
    await UsageIngester(cluster_redis, db_pool).ensure_groups()  # what the worker does first
    await cluster_calls.make(per_account=12)
    await cluster_calls.abandon()
    accounts = cluster_calls.accounts
    shards = {account.developer.shard for account in accounts}
    user_ids = [account.developer.user_id for account in accounts]
    assert cluster_calls.agent is not None
    fast = {"REDIS_URL": valkey_cluster.url, "REDIS_CLUSTER": "true", "USAGE_READ_COUNT": "5",
            "USAGE_READ_BLOCK_MS": "100", "USAGE_CLAIM_INTERVAL_S": "0.2",
            "USAGE_CLAIM_MIN_IDLE_S": "0.5", "WORKER_REAPER_INTERVAL_S": "0.2"}  # fmt: skip
    env = os.environ | worker_env(database_url, "", **fast)
    first = Worker(env | {"WORKER_METRICS_PORT": str(free_port())}, tmp_path / "first.log")
    second = Worker(env | {"WORKER_METRICS_PORT": str(free_port())}, tmp_path / "second.log")
    try:
        async with hold_agent_row(db_pool, cluster_calls.agent.agent_id) as release:
            first.start()
            await wait_until(lambda: has_pending(cluster_redis, shards), 60, "a batch in flight")
            assert first.signal(signal.SIGKILL) == -signal.SIGKILL
            await release()
        killed_at = await count_rows(db_pool, user_ids)

        second.start()
        expected = len(cluster_calls.expected.calls)
        await wait_until(
            lambda: at_least(db_pool, user_ids, expected), 90, "every event in call_logs"
        )
        await wait_until(lambda: drained(cluster_redis, shards), 30, "the streams to drain")
        assert killed_at < expected, "the kill came after everything was ingested"
        await cluster_calls.assert_written_once(db_pool)
        for account in accounts:  # reaped: nothing reserved, the abandoned units given back
            shard = account.developer.shard
            assert await cluster_redis.hlen(keyspace.reservations(shard)) == 0
            used = cluster_calls.expected.used_quota[account.developer.user_id]
            assert int(await cluster_redis.get(cluster_calls.quota_key(account))) == 1000 - used
        async with httpx.AsyncClient() as http:
            page = await http.get(f"http://127.0.0.1:{second.metrics_port}/metrics")
        assert metric(page.text, "agentlink_worker_usage_claimed_total") > 0
        assert second.signal(signal.SIGTERM) == 0
        # Every periodic job (claim, consumer sweep, lag, reaper, ...) ran on the cluster.
        assert '"job failed"' not in second.log.read_text()
    finally:
        for worker in (first, second):
            worker.stop()
            if worker.log.exists():  # shown by pytest only when the test failed
                print(f"--- {worker.log.name}\n{worker.log.read_text()[-5000:]}")


async def test_a_primary_back_without_its_groups_is_read_while_the_others_are_busy(
    db_pool: asyncpg.Pool, cluster_redis: RedisCluster, cluster_calls: ClusterCalls
) -> None:
    """A primary restarted without persistence has lost its consumer groups: its streams
    get them back on the first read that finds the others' entries, not only once a read
    finds nothing anywhere (under steady traffic that never comes)."""
    ingester = UsageIngester(cluster_redis, db_pool)
    await ingester.ensure_groups()
    lost = cluster_redis.get_node_from_key(cluster_calls.quota_key(cluster_calls.accounts[0]))
    await cluster_redis.execute_command("FLUSHDB", target_nodes=lost)  # back empty
    for account in cluster_calls.accounts:  # as the gateways reload the balances
        await cluster_redis.set(cluster_calls.quota_key(account), 1000)
    await cluster_calls.make(per_account=3)

    # One drain: the others' entries are read first, then the emptied primary's.
    written = await ingester.drain()
    assert written == len(cluster_calls.expected.calls)
    await cluster_calls.assert_written_once(db_pool)
