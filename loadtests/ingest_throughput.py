"""Usage ingestion throughput: events/s from the Redis usage streams into Postgres.

    python -m loadtests.ingest_throughput [--events 20000] [--batch-max 5000]
        [--read-count 100] [--developers 200] [--agents 20] [--rounds 3] [--no-fsync]

Starts a throwaway Postgres (durable: fsync and synchronous_commit on, as in production,
unless --no-fsync) and Valkey, creates developers (each on its own random shard), creators
and agents, appends `--events` usage events to the developers' shard streams exactly as
commit.lua writes them (85% billable quota calls, 10% failed calls, 5% billable trials), then
times `UsageIngester.drain()`: XREADGROUP over all 1024 streams, one INSERT ... ON CONFLICT
statement with its aggregate updates per batch, XACK + XDEL. It checks that every event
landed exactly once and that the aggregates add up, and prints events/s per round.
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import shutil
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import redis.asyncio as redis_asyncio

from common import keyspace
from common.db import create_pool
from common.migrations import migrate_url
from common.redis_store import create_redis
from control_plane.settings import UsageIngestSettings
from control_plane.usage_ingest import UsageIngester
from devstack.servers import PostgresServer, ValkeyServer, free_port
from tests.factories import Agent, Developer, make_agent, make_developer, make_key

PIPELINE = 1000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-max", type=int, default=5000)
    parser.add_argument("--read-count", type=int, default=100)
    parser.add_argument("--developers", type=int, default=200)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fsync", action="store_true", help="Postgres without fsync")
    parser.add_argument(
        "--compare-rollups",
        action="store_true",
        help="alternate rounds with the call_logs rollup trigger off and on (its cost)",
    )
    return parser.parse_args()


@dataclasses.dataclass(frozen=True)
class Population:
    developers: list[tuple[Developer, str]]  # developer, key id
    agents: list[Agent]


async def populate(db: asyncpg.Pool, developers: int, agents: int) -> Population:
    devs = []
    for _ in range(developers):
        developer = await make_developer(db, quota=10_000_000, tier="paid")
        devs.append((developer, (await make_key(db, developer)).key_id))
    prices = [Decimal("0.01"), Decimal("0.02"), Decimal("0.05")]
    made = [await make_agent(db, price=prices[i % len(prices)]) for i in range(agents)]
    return Population(devs, made)


async def append_events(
    redis: redis_asyncio.Redis, population: Population, count: int, rng: random.Random
) -> None:
    now_ms = int(time.time() * 1000)
    for start in range(0, count, PIPELINE):
        async with redis.pipeline(transaction=False) as pipe:
            for index in range(start, min(count, start + PIPELINE)):
                developer, key_id = rng.choice(population.developers)
                agent = rng.choice(population.agents)
                roll = rng.random()
                billable, charge, units = (
                    (True, "quota", 1) if roll < 0.85 else (False, "quota", 0)
                    if roll < 0.95 else (True, "trial", 0)
                )  # fmt: skip
                fields = {
                    "call_id": uuid.uuid4().hex, "request_id": f"bench-{index}",
                    "user_id": developer.user_id, "key_id": key_id,
                    "agent_id": agent.agent_id, "agent_version": 1, "charge": charge,
                    "units": units, "billable": "1" if billable else "0",
                    "status": "success" if billable else "error", "input_tokens": 120,
                    "output_tokens": 80 if billable else 0, "latency_ms": 900,
                    "error_code": "" if billable else "50201", "ts_ms": now_ms + index,
                }  # fmt: skip
                pipe.xadd(keyspace.usage_stream(developer.shard), fields)  # type: ignore[arg-type]
            await pipe.execute()


async def run_round(
    db: asyncpg.Pool,
    redis: redis_asyncio.Redis,
    population: Population,
    args: argparse.Namespace,
    rng: random.Random,
) -> float:
    events: int = args.events
    before: int = await db.fetchval("SELECT count(*) FROM call_logs")
    await append_events(redis, population, args.events, rng)
    settings = dataclasses.replace(
        UsageIngestSettings.from_env({}), batch_max=args.batch_max, read_count=args.read_count
    )
    ingester = UsageIngester(redis, db, settings=settings, consumer="bench")
    await ingester.ensure_groups()
    started = time.perf_counter()
    written = await ingester.drain()
    elapsed = time.perf_counter() - started
    after: int = await db.fetchval("SELECT count(*) FROM call_logs")
    if written != events or after - before != events:
        raise SystemExit(f"wrote {written} rows ({after - before} new) for {events} events")
    return events / elapsed


async def check_totals(db: asyncpg.Pool) -> None:
    """The aggregates equal what call_logs says, agent by agent and developer by developer."""
    wrong = await db.fetchval(
        """SELECT count(*) FROM agents a
           LEFT JOIN (SELECT agent_id, count(*) FILTER (WHERE billable) AS calls,
                             sum(cost_usd) AS revenue
                      FROM call_logs GROUP BY agent_id) c ON c.agent_id = a.id
           WHERE a.total_calls <> coalesce(c.calls, 0)
              OR a.total_revenue <> coalesce(c.revenue, 0)"""
    )
    wrong += await db.fetchval(
        """SELECT count(*) FROM quotas q
           LEFT JOIN (SELECT user_id, sum(units) AS units FROM call_logs GROUP BY user_id) c
                  ON c.user_id = q.user_id
           WHERE q.used_quota <> coalesce(c.units, 0)"""
    )
    if wrong:
        raise SystemExit(f"{wrong} aggregates do not match call_logs")


async def benchmark(args: argparse.Namespace, database_url: str, redis_url: str) -> None:
    await migrate_url(database_url)
    db = await create_pool(database_url, min_size=2, max_size=4)
    redis = create_redis(redis_url, socket_timeout_s=30)
    rng = random.Random(1)
    try:
        population = await populate(db, args.developers, args.agents)
        shards = len({developer.shard for developer, _ in population.developers})
        print(
            f"{args.events} events per round over {shards} shards, {args.agents} agents; "
            f"batch max {args.batch_max}, read count {args.read_count}/stream; "
            f"Postgres fsync {'off' if args.no_fsync else 'on'}",
            flush=True,
        )
        rates: dict[bool, list[float]] = {True: [], False: []}
        for round_number in range(1, args.rounds + 1):
            rollups = not args.compare_rollups or round_number % 2 == 0
            state = "ENABLE" if rollups else "DISABLE"
            await db.execute(f"ALTER TABLE call_logs {state} TRIGGER call_logs_rollup")
            rate = await run_round(db, redis, population, args, rng)
            rates[rollups].append(rate)
            label = "" if not args.compare_rollups else f" (rollups {'on' if rollups else 'off'})"
            print(f"round {round_number}: {rate:,.0f} events/s{label}", flush=True)
        await db.execute("ALTER TABLE call_logs ENABLE TRIGGER call_logs_rollup")
        await check_totals(db)
        for rollups, samples in rates.items():
            if samples:
                label = (
                    ""
                    if not args.compare_rollups
                    else f" with rollups {'on' if rollups else 'off'}"
                )
                print(f"median{label}: {statistics.median(samples):,.0f} events/s")
        print("(aggregates verified)")
    finally:
        await redis.aclose()
        await db.close()


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentlink-ingest-"))
    root.chmod(0o755)  # as root, postgres runs as `nobody` and must reach its data folder
    postgres = PostgresServer(root / "postgres", free_port(), durable=not args.no_fsync)
    valkey = ValkeyServer(root / "valkey", free_port(), durable=False)
    try:
        database_url, redis_url = postgres.start(), valkey.start()
        asyncio.run(benchmark(args, database_url, redis_url))
    finally:
        valkey.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
