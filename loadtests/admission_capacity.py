"""Admissions per second one Redis primary carries: the gateway's own admission pair
(admit.lua before the provider call, commit.lua after, which appends the usage event), sent the
way the gateway sends it (gateway/admission.py over gateway/hot_redis.py), from several client
processes, against a throwaway Valkey.

    python -m loadtests.admission_capacity [--duration 5] [--clients 3] [--concurrency 64]
                                           [--users 256]

Every call is a paid developer's (no trials), spread over `--users` developers and so over
their shards, on one agent; the records are warm, as in steady state. It prints the
admissions per second reached, Valkey's CPU time per admission (both scripts), how much of one
core Valkey used meanwhile, and the ceiling one Valkey core gives at that cost (1 s / CPU per
admission). On a small box the clients compete with Valkey for the cores, so the reached rate
sits below the ceiling; capacity planning uses the ceiling (docs/operations.md "Scale"). It
checks the books before it reports: quota consumed == admissions, no reservation left.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import uvloop

from common import keyspace
from common.db import create_pool
from common.migrations import migrate_url
from common.redis_store import LuaScripts, create_redis
from gateway.admission import AdmissionLimits, Admitter
from gateway.call_result import CallResult
from gateway.hot_redis import HotRedis, HotScripts
from gateway.providers.base import Usage
from gateway.records import RecordLoader
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


def client(job: Job, ready: Any, go: Any, results: Any) -> None:
    results.put(uvloop.run(drive(job, ready, go)))


async def drive(job: Job, ready: Any, go: Any) -> int:
    db = await create_pool(job.database_url, min_size=0, max_size=2)  # cold misses only
    redis = create_redis(job.redis_url)
    hot = HotRedis(job.redis_url, timeout_s=5)
    admitter = Admitter(
        HotScripts(hot), RecordLoader(db, redis, LuaScripts(redis), UNIT_PRICE), LIMITS
    )
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


async def seed(database_url: str, redis_url: str, users: int) -> tuple[str, list[Account]]:
    """Paid developers with a huge quota, a key each, one agent; each pair admitted once so
    its records are in Redis (steady state: warm)."""
    await migrate_url(database_url)
    db = await create_pool(database_url, min_size=1, max_size=4)
    redis = create_redis(redis_url)
    try:
        agent = await make_agent(db, price=UNIT_PRICE)
        scripts = LuaScripts(redis)
        admitter = Admitter(scripts, RecordLoader(db, redis, scripts, UNIT_PRICE), LIMITS)
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
        await redis.aclose()
        await db.close()


async def books(redis_url: str, callers: list[Account]) -> tuple[int, int]:
    """(units consumed since seeding, reservations still open) over every caller."""
    redis = create_redis(redis_url)
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
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with scratch_servers("agentlink-admissions-") as scratch:
        scratch.postgres.start()
        scratch.valkey.start()
        redis_url, database_url = scratch.valkey.url, scratch.postgres.url
        agent_id, callers = asyncio.run(seed(database_url, redis_url, args.users))
        assert scratch.valkey.process is not None
        valkey_pid = scratch.valkey.process.pid
        spawn = multiprocessing.get_context("spawn")
        ready, go, results = spawn.Semaphore(0), spawn.Event(), spawn.Queue()
        job = Job(redis_url, database_url, agent_id, callers, args.concurrency, args.duration)
        processes = [
            spawn.Process(target=client, args=(job, ready, go, results))
            for _ in range(args.clients)
        ]
        for process in processes:
            process.start()
        for _ in processes:
            assert ready.acquire(timeout=120), "a client did not start"
        cpu_before, wall_before = cpu_seconds(valkey_pid), time.monotonic()
        go.set()
        admissions = sum(results.get(timeout=args.duration + 60) for _ in processes)
        cpu_s, wall_s = cpu_seconds(valkey_pid) - cpu_before, time.monotonic() - wall_before
        for process in processes:
            process.join(10)
        consumed, open_reservations = asyncio.run(books(redis_url, callers))
    assert admissions > 0, "no admission completed"
    assert consumed == admissions, f"quota consumed {consumed} != admissions {admissions}"
    assert open_reservations == 0, f"{open_reservations} reservations left open"
    per_admission_us = cpu_s / admissions * 1e6
    print(f"admissions (admit + commit): {admissions} in {args.duration:.0f} s from "
          f"{args.clients} clients x {args.concurrency} in flight, "
          f"over {args.users} developers")  # fmt: skip
    print(f"reached:            {admissions / args.duration:10.0f} admissions/s")
    print(f"Valkey CPU:         {per_admission_us:10.1f} us per admission, "
          f"{cpu_s / wall_s:.0%} of one core during the run")  # fmt: skip
    print(f"one-core ceiling:   {1e6 / per_admission_us:10.0f} admissions/s")
    print(f"books: quota consumed {consumed} == admissions, 0 reservations open")


if __name__ == "__main__":
    main()
