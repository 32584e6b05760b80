"""The gateway with knowledge bases, end to end: what a knowledge call adds, and what it does
to plain calls running beside it.

    python -m loadtests.knowledge_load [--chunks 1000,100000] [--duration 10]
                                       [--plain-clients 4]

Starts a throwaway Postgres + Valkey, the mock provider and the gateway (1 uvicorn worker,
`EMBEDDING_THREADS=1`, `OPENBLAS_NUM_THREADS=1`: one core for embeddings), a paid developer, a
plain agent and, per size in --chunks, a knowledge agent with that many chunks (random vectors
and words: their meaning does not matter for speed). Every knowledge call asks a different
30-word question, so none is answered from the cache. Measured, with httpx clients:

1. plain calls alone (--plain-clients in parallel): p50 / p99;
2. knowledge calls alone, one client: p50 / p99, the p50 they add over plain calls with one
   client, and the gateway's CPU per call (utime+stime from /proc);
3. both at once: the plain calls' p99 next to (1).
The gateway worker's RSS is printed after plain calls only and after the first knowledge call,
with that of the embedding service it started (one per host, shared by all its workers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

import httpx

from common.db import create_pool
from common.domain import KnowledgeSettings
from common.migrations import migrate_url
from devstack.servers import free_port
from loadtests.knowledge_corpus import documents
from loadtests.retrieval_benchmark import fill, percentile
from loadtests.scratch import KEY_SPEC, Scratch, scratch_servers, start, tree_cpu
from tests.factories import make_agent, make_developer, make_key

WORDS = sorted({w.strip(".,:?").lower() for d in documents() for w in d.text.split()})


def question(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(29)) + "?"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]  # fmt: skip


async def calls(
    client: httpx.AsyncClient, url: str, key: str, until: float, rng: random.Random | None
) -> list[float]:
    """Calls one after another until `until`; returns their latencies in ms."""
    timings = []
    while time.monotonic() < until:
        content = question(rng) if rng is not None else "hello there"
        began = time.perf_counter()
        body = {"messages": [{"role": "user", "content": content}]}
        response = await client.post(url, headers={"X-AgentLink-Key": key}, json=body)
        if response.status_code != 200:
            raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")
        timings.append((time.perf_counter() - began) * 1000)
    return timings


async def run(clients: int, url: str, key: str, seconds: float, knowledge: bool) -> list[float]:
    until = time.monotonic() + seconds
    # A fresh seed per client and run: no question is ever asked twice, so none is cached.
    seeds = [random.randrange(2**63) for _ in range(clients)]
    async with httpx.AsyncClient(timeout=30) as client:
        parts = await asyncio.gather(*(
            calls(client, url, key, until, random.Random(seed) if knowledge else None)
            for seed in seeds
        ))  # fmt: skip
    return [t for part in parts for t in part]


def line(name: str, timings: list[float]) -> str:
    return (f"{name:44} n={len(timings):5d}  p50 {percentile(timings, 0.5):7.2f} ms"
            f"  p99 {percentile(timings, 0.99):7.2f} ms")  # fmt: skip


async def seed(database_url: str, sizes: list[int]) -> tuple[str, str, dict[int, str]]:
    await migrate_url(database_url)
    db = await create_pool(database_url, min_size=1, max_size=4)
    developer = await make_developer(db, quota=10**9, tier="paid")
    key = await make_key(db, developer)
    plain = await make_agent(db, leak_guard=False)
    agents = {}
    for size in sizes:
        agent = await make_agent(db, leak_guard=False, knowledge=KnowledgeSettings(enabled=True))
        began = time.perf_counter()
        await fill(db, agent.agent_id, size)
        await db.execute("UPDATE agents SET knowledge_version = 1 WHERE id = $1", agent.agent_id)
        print(f"filled {size} chunks in {time.perf_counter() - began:.0f} s", flush=True)
        agents[size] = agent.agent_id
    await db.close()
    return key.plaintext, plain.agent_id, agents


async def measure(*, base: str, key: str, plain_id: str, agents: dict[int, str], pid: int,
                  seconds: float, plain_clients: int) -> None:  # fmt: skip
    def chat(agent_id: str) -> str:
        return f"{base}/proxy/v1/agents/{agent_id}/chat"

    await run(plain_clients, chat(plain_id), key, 2, False)  # warm-up
    print(f"gateway worker RSS, plain calls only: {rss_mib(pid):.0f} MiB")
    plain_alone = await run(plain_clients, chat(plain_id), key, seconds, False)
    plain_one = await run(1, chat(plain_id), key, seconds, False)
    print(line(f"plain, {plain_clients} clients", plain_alone))
    print(line("plain, 1 client", plain_one))
    for size, agent_id in agents.items():
        await run(1, chat(agent_id), key, 2, True)  # warm-up: loads the model, plans
        services = ", ".join(f"{rss_mib(child):.0f}" for child in children(pid)) or "none"
        print(f"gateway worker RSS after knowledge calls: {rss_mib(pid):.0f} MiB"
              f" (its embedding service: {services} MiB)")  # fmt: skip
        cpu_before = tree_cpu(pid)
        alone = await run(1, chat(agent_id), key, seconds, True)
        cpu_us = (tree_cpu(pid) - cpu_before) / len(alone) * 1e6
        added = percentile(alone, 0.5) - percentile(plain_one, 0.5)
        print(line(f"knowledge ({size} chunks), 1 client", alone)
              + f"  added p50 {added:6.2f} ms  CPU {cpu_us / 1000:6.2f} ms/call")  # fmt: skip
        mixed_plain, mixed_knowledge = await asyncio.gather(
            run(plain_clients, chat(plain_id), key, seconds, False),
            run(1, chat(agent_id), key, seconds, True),
        )
        print(line(f"  beside it: plain, {plain_clients} clients", mixed_plain)
              + f"  (alone p99 {percentile(plain_alone, 0.99):.2f} ms)")  # fmt: skip
        print(line("  beside it: knowledge, 1 client", mixed_knowledge))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", default="1000,100000")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--plain-clients", type=int, default=4)
    args = parser.parse_args()
    sizes = [int(size) for size in args.chunks.split(",")]
    with scratch_servers("agentlink-knowledge-load-") as scratch:
        run_load(args, sizes, scratch)


def run_load(args: argparse.Namespace, sizes: list[int], scratch: Scratch) -> None:
    root, started = scratch.root, scratch.started
    database_url, redis_url = scratch.postgres.start(), scratch.valkey.start()
    key, plain_id, agents = asyncio.run(seed(database_url, sizes))
    mock_port, gateway_port = free_port(), free_port()
    started.append(start([sys.executable, "-m", "mock_provider", "--port", str(mock_port)],
                         root / "mock.log", mock_port, dict(os.environ)))  # fmt: skip
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "AGENTLINK_ENCRYPTION_KEYS": KEY_SPEC, "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": "t1",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1", "OPENAI_API_KEY": "mock",
           "GATEWAY_ACCESS_LOG": "false", "LOG_LEVEL": "WARNING",
           "RATE_LIMIT_PAID_PER_MIN": "100000000", "EMBEDDING_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    gateway = start([sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
                     "--host", "127.0.0.1", "--port", str(gateway_port), "--loop", "uvloop",
                     "--http", "httptools", "--no-access-log", "--log-level", "warning"],
                    root / "gateway.log", gateway_port, env)  # fmt: skip
    started.append(gateway)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    asyncio.run(measure(base=f"http://127.0.0.1:{gateway_port}", key=key, plain_id=plain_id,
                        agents=agents, pid=gateway.pid, seconds=args.duration,
                        plain_clients=args.plain_clients))  # fmt: skip


if __name__ == "__main__":
    main()
