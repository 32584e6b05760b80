"""Analytics at scale: the creator and developer analytics queries on millions of call_logs.

    python -m loadtests.analytics_bench [--rows 10000000] [--agents 2000] [--developers 20000]
        [--creators 500] [--days 30] [--runs 20] [--keep DIR]

Starts a throwaway Postgres (fsync off), applies the migrations, makes creators (4 agents
each), agents and developers (one API key each), then inserts `--rows` call_logs spread over
the last `--days` days in statements of 200k rows. Popularity is skewed like a marketplace's:
developer = floor(developers * r^2); each developer uses up to 5 agents (slot =
floor(5 * r^2)), each picked by hashing (developer, slot) into agent = floor(agents * h^3) (the
top 1% of agents get ~20% of the developers); 95% success, 2% errors, 1% timeouts, 2%
cancelled. The bulk load runs with the rollup trigger off and then builds the rollups with
migration 0007's own backfill SQL (the same tables and values the trigger keeps; what the
trigger costs ingestion is measured by `loadtests/ingest_throughput.py --compare-rollups`).
`--with-trigger` loads through the trigger instead (slow: a few thousand rows/s on a busy
2-core box).

Then it times, over `--runs` runs after a warm-up, the real service functions the routes call:
creator analytics of the heaviest creator (30 days by day; 7 days by hour; one agent), of a
typical creator, developer usage of the heaviest and of a typical developer (30 days, with
partial-hour edges), and for comparison the same creator report computed straight from
call_logs with a partition-pruned query (what the rollups replace). Prints p50/p95/max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg

from common.db import create_pool
from common.domain import UserType
from common.migrations import migrate_url
from control_plane.analytics.schemas import AnalyticsQuery
from control_plane.analytics.service import creator_analytics
from control_plane.auth.principal import Principal
from control_plane.developers.schemas import UsageQuery
from control_plane.developers.service import usage
from control_plane.state import ControlPlaneState
from devstack.servers import PostgresServer, free_port

CHUNK = 200_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--developers", type=int, default=20_000)
    parser.add_argument("--creators", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="data folder to keep (reused when it exists)")
    parser.add_argument("--with-trigger", action="store_true", help="load through the trigger")
    return parser.parse_args()


async def populate(db: asyncpg.Pool, args: argparse.Namespace) -> None:
    await db.execute(
        "SELECT ensure_call_log_partitions((now() - make_interval(days => $1))::date, $2)",
        args.days,
        args.days // 28 + 3,
    )
    await db.execute(
        """INSERT INTO users (id, email, password_hash, user_type, redis_shard)
           SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
                  'creator' || g || '@bench.test', 'x', 'creator', g % 1024
           FROM generate_series(0, $1 - 1) g""",
        args.creators,
    )
    await db.execute(
        """INSERT INTO users (id, email, password_hash, user_type, redis_shard)
           SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid,
                  'dev' || g || '@bench.test', 'x', 'developer', g % 1024
           FROM generate_series(0, $1 - 1) g""",
        args.developers,
    )
    await db.execute(
        """INSERT INTO api_keys (id, user_id, key_hash, key_prefix, name)
           SELECT ('00000000-0000-4000-a000-' || lpad(to_hex(g), 12, '0'))::uuid,
                  ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid,
                  encode(sha256(g::text::bytea), 'hex'), 'ak_bench', 'bench'
           FROM generate_series(0, $1 - 1) g""",
        args.developers,
    )
    await db.execute(
        """INSERT INTO agents (id, creator_id, name, status, config_encrypted, config_key_id,
                               price_per_call, published_at)
           SELECT ('00000000-0000-4000-b000-' || lpad(to_hex(g), 12, '0'))::uuid,
                  ('00000000-0000-4000-8000-' || lpad(to_hex((g / 4) % $2), 12, '0'))::uuid,
                  'agent ' || g, 'active', decode(repeat('ab', 40), 'hex'), 'k1',
                  (1 + g % 5) * 0.01, now()
           FROM generate_series(0, $1 - 1) g""",
        args.agents,
        args.creators,
    )


_INSERT = """
INSERT INTO call_logs (request_id, agent_id, agent_version, api_key_id, user_id, units,
                       billable, input_tokens, output_tokens, latency_ms, status, cost_usd,
                       created_at)
SELECT 'bench-' || g, agent, 1, key, key_user, CASE WHEN billable THEN 1 ELSE 0 END, billable,
       20, CASE WHEN billable THEN 80 ELSE 0 END, latency, status,
       CASE WHEN billable THEN (1 + agent_index % 5) * 0.01 ELSE 0 END, at
FROM (
    SELECT g, agent_index,
           ('00000000-0000-4000-b000-' || lpad(to_hex(agent_index), 12, '0'))::uuid AS agent,
           ('00000000-0000-4000-a000-' || lpad(to_hex(developer), 12, '0'))::uuid AS key,
           ('00000000-0000-4000-9000-' || lpad(to_hex(developer), 12, '0'))::uuid AS key_user,
           CASE WHEN s < 0.95 THEN 'success' WHEN s < 0.97 THEN 'error'
                WHEN s < 0.98 THEN 'timeout' ELSE 'cancelled' END AS status,
           s < 0.95 OR s >= 0.98 AS billable,
           (40 + 3000 * power(random(), 4))::int AS latency,
           $3::timestamptz - make_interval(secs => random() * $4) AS at
    FROM (
        -- A developer uses a few agents (up to 5, the first most), each drawn from the
        -- marketplace's popularity curve by a hash of (developer, slot).
        SELECT g, floor($5 * power(abs(hashint8(developer * 8 + slot)) / 2147483648.0, 3))::int
                      AS agent_index,
               developer, s
        FROM (
            SELECT g, floor($6 * power(random(), 2))::int AS developer,
                   floor(5 * power(random(), 2))::int AS slot, random() AS s
            FROM generate_series($1::bigint, $2::bigint) g
        ) d
    ) r
) c
"""


MIGRATION = Path(__file__).resolve().parents[1] / "migrations" / "0007_money_out.sql"
BACKFILL_MARKER = "-- Calls logged before this migration, rolled up once"


async def load(db: asyncpg.Pool, args: argparse.Namespace, now: datetime) -> float:
    started = time.perf_counter()
    if not args.with_trigger:
        await db.execute("ALTER TABLE call_logs DISABLE TRIGGER call_logs_rollup")
    done = 0
    while done < args.rows:
        count = min(CHUNK, args.rows - done)
        await db.execute(
            _INSERT,
            done,
            done + count - 1,
            now,
            args.days * 86400.0,
            args.agents,
            args.developers,
            timeout=3600,
        )
        done += count
        elapsed = time.perf_counter() - started
        print(f"  {done:>10,} rows  {done / elapsed:,.0f} rows/s", flush=True)
    if not args.with_trigger:
        await db.execute("ALTER TABLE call_logs ENABLE TRIGGER call_logs_rollup")
        print("building the rollups with migration 0007's backfill", flush=True)
        backfill = MIGRATION.read_text().split(BACKFILL_MARKER, 1)[1].split("\n", 1)[1]
        await db.execute(backfill, timeout=7200)
    return time.perf_counter() - started


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    await call()  # warm-up: plans cached, pages in memory
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


_RAW_REPORT = """
SELECT agent_id, (created_at AT TIME ZONE 'UTC')::date AS day, count(*),
       count(*) FILTER (WHERE billable), count(*) FILTER (WHERE status = 'error'),
       sum(cost_usd), count(DISTINCT user_id),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms),
       percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
FROM call_logs
WHERE agent_id = ANY($1::uuid[]) AND created_at >= $2 AND created_at < $3
GROUP BY 1, 2
"""


async def measure(db: asyncpg.Pool, args: argparse.Namespace, now: datetime) -> None:
    state = cast(ControlPlaneState, type("BenchState", (), {"db": db})())
    heavy_creator = await db.fetchval(
        """SELECT a.creator_id FROM usage_agent_daily d JOIN agents a ON a.id = d.agent_id
           GROUP BY 1 ORDER BY sum(d.calls) DESC LIMIT 1"""
    )
    typical_creator = await db.fetchval(
        """SELECT creator_id FROM (
               SELECT a.creator_id, sum(d.calls) AS calls FROM usage_agent_daily d
               JOIN agents a ON a.id = d.agent_id GROUP BY 1) t
           ORDER BY calls LIMIT 1 OFFSET (SELECT count(DISTINCT creator_id) / 2 FROM agents)"""
    )
    heavy_developer = await db.fetchval(
        "SELECT user_id FROM usage_key_hourly GROUP BY 1 ORDER BY sum(calls) DESC LIMIT 1"
    )
    typical_developer = await db.fetchval(
        """SELECT user_id FROM (SELECT user_id, sum(calls) AS calls FROM usage_key_hourly
           GROUP BY 1) t ORDER BY calls LIMIT 1
           OFFSET (SELECT count(DISTINCT user_id) / 2 FROM usage_key_hourly)"""
    )
    heavy_agent = await db.fetchval(
        "SELECT agent_id FROM usage_agent_daily GROUP BY 1 ORDER BY sum(calls) DESC LIMIT 1"
    )
    heavy_calls = await db.fetchval(
        """SELECT sum(d.calls) FROM usage_agent_daily d JOIN agents a ON a.id = d.agent_id
           WHERE a.creator_id = $1""",
        heavy_creator,
    )

    def creator(user_id: Any) -> Principal:
        return Principal(str(user_id), UserType.CREATOR, None, 0)

    def developer(user_id: Any) -> Principal:
        return Principal(str(user_id), UserType.DEVELOPER, None, 0)

    month = now - timedelta(days=30)
    week = now - timedelta(days=7)
    edge_from = (month + timedelta(minutes=17)).astimezone(UTC)
    agent_ids = [
        str(r["id"])
        for r in await db.fetch("SELECT id FROM agents WHERE creator_id = $1", heavy_creator)
    ]
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("creator analytics, heaviest creator, 30 days by day", lambda: creator_analytics(
            state, creator(heavy_creator), AnalyticsQuery(from_=month, to=now))),
        ("creator analytics, heaviest creator, 7 days by hour", lambda: creator_analytics(
            state, creator(heavy_creator), AnalyticsQuery(from_=week, to=now,
                                                          granularity="hour"))),
        ("creator analytics, heaviest agent only, 30 days by day", lambda: creator_analytics(
            state, creator(heavy_creator), AnalyticsQuery(from_=month, to=now,
                                                          agent_id=str(heavy_agent)))),
        ("creator analytics, typical creator, 30 days by day", lambda: creator_analytics(
            state, creator(typical_creator), AnalyticsQuery(from_=month, to=now))),
        ("developer usage, heaviest developer, 30 days", lambda: usage(
            state, developer(heavy_developer), UsageQuery(from_=edge_from, to=now))),
        ("developer usage, typical developer, 30 days", lambda: usage(
            state, developer(typical_developer), UsageQuery(from_=edge_from, to=now))),
        ("(comparison) heaviest creator from raw call_logs, 30 days", lambda: db.fetch(
            _RAW_REPORT, agent_ids, month, now, timeout=600)),
    ]  # fmt: skip
    print(f"\nheaviest creator: {heavy_calls:,} calls in {len(agent_ids)} agents")
    sizes = await db.fetch(
        """SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) AS size,
                  reltuples::bigint AS rows
           FROM pg_class WHERE relname IN ('usage_agent_hourly', 'usage_agent_daily',
               'usage_agent_developers_daily', 'usage_key_hourly') ORDER BY relname"""
    )
    for row in sizes:
        print(f"  {row['relname']:<30} {row['rows']:>12,} rows  {row['size']}")
    print(f"\n{'query':<60} {'p50':>8} {'p95':>8} {'max':>8}  (ms, {args.runs} runs)")
    for name, call in cases:
        runs = args.runs if not name.startswith("(comparison)") else 3
        samples = await timed(runs, call)
        p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 2 else samples[0]
        print(
            f"{name:<60} {statistics.median(samples):8.1f} {p95:8.1f} {max(samples):8.1f}",
            flush=True,
        )


async def benchmark(args: argparse.Namespace, database_url: str, fresh: bool) -> None:
    db = await create_pool(database_url, min_size=1, max_size=4)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        if fresh:
            await populate(db, args)
            print(f"loading {args.rows:,} call_logs (rollups maintained by the trigger)")
            seconds = await load(db, args, now)
            print(f"loaded in {seconds:.0f} s: {args.rows / seconds:,.0f} rows/s")
            await db.execute("VACUUM ANALYZE", timeout=3600)
        else:
            now = await db.fetchval("SELECT max(created_at) FROM call_logs") + timedelta(seconds=1)
        await measure(db, args, now)
    finally:
        await db.close()


def main() -> None:
    args = parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="agentlink-analytics-"))
    fresh = not (root / "postgres").exists()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    postgres = PostgresServer(root / "postgres", free_port(), durable=False)
    try:
        database_url = postgres.start()
        if fresh:
            asyncio.run(migrate_url(database_url))
        asyncio.run(benchmark(args, database_url, fresh))
    finally:
        postgres.stop()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
