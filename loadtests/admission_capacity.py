"""Admissions per second one Redis primary carries: the gateway's own admission pair
(admit.lua before the provider call, commit.lua after, which appends the usage event), sent the
way the gateway sends it (gateway/admission.py over gateway/hot_redis.py), from several client
processes, against a throwaway Valkey; or, with `--primaries N` (N > 1), against a throwaway
Redis Cluster of N Valkey primaries, sent as a REDIS_CLUSTER gateway sends it
(gateway/sharded_admission.py over gateway/hot_cluster.py: admit_sharded on the user's primary
and the agent record's read on the agent's, then commit.lua).

    python -m loadtests.admission_capacity [--duration 5] [--clients 3] [--concurrency 64]
                                           [--users 256] [--primaries 1]

Every call is a paid developer's (no trials), spread over `--users` developers and so over
their shards, on one agent; the records are warm, as in steady state. It prints the
admissions per second reached, Valkey's CPU time per admission (both scripts), how much of one
core Valkey used meanwhile, and the ceiling one Valkey core gives at that cost (1 s / CPU per
admission); on a cluster the same per primary, and the ceiling where the busiest primary's
core is full (the calls spread over the primaries with their developers' shards). On a small
box the clients compete with Valkey for the cores, so the reached rate sits below the
ceiling; capacity planning uses the ceiling (docs/operations.md "Scale"). It checks the books
before it reports: quota consumed == admissions, no reservation left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import uvloop

from common import keyspace
from common.db import create_pool
from common.migrations import migrate_url
from common.redis_store import LuaScripts, RedisClient, create_redis
from devstack.servers import ValkeyCluster, free_port
from gateway.admission import AdmissionLimits, Admitter
from gateway.call_result import CallResult
from gateway.hot_cluster import HotCluster
from gateway.hot_redis import HotRedis, HotScripts
from gateway.providers.base import Usage
from gateway.records import RecordLoader
from gateway.sharded_admission import ShardedAdmitter, agent_read
from loadtests.scratch import cpu_seconds, scratch_servers
from tests.factories import Account, make_account, make_agent

QUOTA = 10**9
UNIT_PRICE = Decimal("0.01")
LIMITS = AdmissionLimits(
    free_per_window=10,
    paid_per_window=10**9,  # measure the scripts, not the rate limiter's refusals
    window_ms=60_000,
    reservation_ms=900_000,
    trial_calls=0,  # every call is charged to quota
)
ANSWERED = CallResult.answered(Usage(input_tokens=12, output_tokens=34))


@dataclass(frozen=True)
class Job:
    redis_url: str
    database_url: str
    agent_id: str
    callers: list[Account]
    concurrency: int
    duration_s: float
    cluster: bool = False  # redis_url names a node of a Redis Cluster


def client(job: Job, ready: Any, go: Any, results: Any) -> None:
    """One client process: (admissions, its CPU seconds: the gateway side of them)."""
    cpu_before = time.process_time()
    admissions = uvloop.run(drive(job, ready, go))
    results.put((admissions, time.process_time() - cpu_before))


def gateway_admitter(
    db: asyncpg.Pool, redis: RedisClient, url: str, *, cluster: bool
) -> tuple[Admitter, HotRedis | HotCluster]:
    """The admitter a gateway builds (gateway/app.py), on one node or on a cluster."""
    records = RecordLoader(db, redis, LuaScripts(redis), UNIT_PRICE)
    if not cluster:
        hot = HotRedis(url, timeout_s=5)
        return Admitter(HotScripts(hot), records, LIMITS), hot
    nodes = HotCluster(url, timeout_s=5)
    sharded = ShardedAdmitter(HotScripts(nodes), records, LIMITS, read_agent=agent_read(nodes))
    return sharded, nodes


async def drive(job: Job, ready: Any, go: Any) -> int:
    db = await create_pool(job.database_url, min_size=0, max_size=2)  # cold misses only
    redis = create_redis(job.redis_url, cluster=job.cluster)
    admitter, hot = gateway_admitter(db, redis, job.redis_url, cluster=job.cluster)
    done = 0

    async def worker(index: int, end: float) -> None:
        nonlocal done
        callers = job.callers
        while time.time() < end:
            caller = callers[index % len(callers)]
            index += job.concurrency
            admission = await admitter.admit(
                caller.key.key_hash, caller.developer.shard, job.agent_id, uuid.uuid4().hex
            )
            await admitter.commit(admission, ANSWERED, latency_ms=5, request_id=admission.call_id)
            done += 1

    ready.release()
    await asyncio.to_thread(go.wait)  # every client starts together
    end = time.time() + job.duration_s
    await asyncio.gather(*(worker(n, end) for n in range(job.concurrency)))
    await hot.aclose()
    await redis.aclose()
    await db.close()
    return done


async def seed(
    database_url: str, redis_url: str, users: int, *, cluster: bool = False
) -> tuple[str, list[Account]]:
    """Paid developers with a huge quota, a key each, one agent; each pair admitted once so
    its records are in Redis (steady state: warm)."""
    await migrate_url(database_url)
    db = await create_pool(database_url, min_size=1, max_size=4)
    redis = create_redis(redis_url, cluster=cluster)
    admitter, hot = gateway_admitter(db, redis, redis_url, cluster=cluster)
    try:
        agent = await make_agent(db, price=UNIT_PRICE)
        callers = []
        for _ in range(users):
            caller = await make_account(db, quota=QUOTA, tier="paid")
            admission = await admitter.admit(
                caller.key.key_hash, caller.developer.shard, agent.agent_id, uuid.uuid4().hex
            )
            await admitter.commit(admission, ANSWERED, latency_ms=5, request_id="warm-up")
            callers.append(caller)
        return agent.agent_id, callers
    finally:
        await hot.aclose()
        await redis.aclose()
        await db.close()


async def books(
    redis_url: str, callers: list[Account], *, cluster: bool = False
) -> tuple[int, int]:
    """(units consumed since seeding, reservations still open) over every caller."""
    redis = create_redis(redis_url, cluster=cluster)
    try:
        consumed = 0
        for caller in callers:
            developer = caller.developer
            left = int(await redis.get(keyspace.quota(developer.shard, developer.user_id)))
            consumed += QUOTA - 1 - left  # the warm-up call took one unit
        shards = {caller.developer.shard for caller in callers}
        open_reservations = sum([await redis.hlen(keyspace.reservations(s)) for s in shards])
        return consumed, open_reservations
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight per client")
    parser.add_argument("--users", type=int, default=256, help="developers the calls spread over")
    parser.add_argument("--primaries", type=int, default=1, help="> 1: a Redis Cluster of them")
    args = parser.parse_args()
    cluster = args.primaries > 1
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with scratch_servers("agentlink-admissions-") as scratch, contextlib.ExitStack() as stack:
        scratch.postgres.start()
        if cluster:
            nodes = ValkeyCluster(
                scratch.root / "cluster", [free_port() for _ in range(args.primaries)]
            )
            stack.callback(nodes.stop)
            redis_url, valkeys = nodes.start(), nodes.nodes
        else:
            redis_url, valkeys = scratch.valkey.start(), [scratch.valkey]
        database_url = scratch.postgres.url
        agent_id, callers = asyncio.run(seed(database_url, redis_url, args.users, cluster=cluster))
        pids = [valkey.process.pid for valkey in valkeys if valkey.process is not None]
        spawn = multiprocessing.get_context("spawn")
        ready, go, results = spawn.Semaphore(0), spawn.Event(), spawn.Queue()
        job = Job(redis_url, database_url, agent_id, callers, args.concurrency, args.duration,
                  cluster)  # fmt: skip
        processes = [
            spawn.Process(target=client, args=(job, ready, go, results))
            for _ in range(args.clients)
        ]
        for process in processes:
            process.start()
        for _ in processes:
            assert ready.acquire(timeout=120), "a client did not start"
        cpu_before, wall_before = [cpu_seconds(pid) for pid in pids], time.monotonic()
        go.set()
        counts = [results.get(timeout=args.duration + 60) for _ in processes]
        admissions, client_s = sum(n for n, _ in counts), sum(c for _, c in counts)
        wall_s = time.monotonic() - wall_before
        cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
        for process in processes:
            process.join(10)
        consumed, open_reservations = asyncio.run(books(redis_url, callers, cluster=cluster))
    assert admissions > 0, "no admission completed"
    assert consumed == admissions, f"quota consumed {consumed} != admissions {admissions}"
    assert open_reservations == 0, f"{open_reservations} reservations left open"
    per_admission_us = sum(cpu) / admissions * 1e6
    print(f"admissions (admit + commit): {admissions} in {args.duration:.0f} s from "
          f"{args.clients} clients x {args.concurrency} in flight, "
          f"over {args.users} developers, {args.primaries} primaries")  # fmt: skip
    print(f"reached:            {admissions / args.duration:10.0f} admissions/s")
    print(f"Valkey CPU:         {per_admission_us:10.1f} us per admission (all primaries), "
          f"{sum(cpu) / wall_s:.0%} of one core during the run")  # fmt: skip
    print(f"client CPU:         {client_s / admissions * 1e6:10.1f} us per admission "
          "(the gateway's side: admission code and its Redis client)")  # fmt: skip
    if cluster:
        for valkey, node_s in zip(valkeys, cpu, strict=True):
            print(f"  primary :{valkey.port}  {node_s / admissions * 1e6:6.1f} us per admission, "
                  f"{node_s / sum(cpu):.0%} of the cluster's CPU")  # fmt: skip
    # Where the busiest primary's core is full (one primary: 1 s / its CPU per admission).
    print(
        f"ceiling:            {admissions / max(cpu):10.0f} admissions/s "
        f"({args.primaries} primar{'y' if args.primaries == 1 else 'ies'}, one core each)"
    )
    print(f"books: quota consumed {consumed} == admissions, 0 reservations open")


if __name__ == "__main__":
    main()
