"""The gateway with knowledge bases, end to end: what a knowledge call adds, and what it does
to plain calls running beside it.

    python -m loadtests.knowledge_load [--chunks 1000,100000] [--rounds 6] [--duration 3]
                                       [--plain-clients 4 | --plain-rate N] [--knowledge-rate M]

Starts a throwaway Postgres + Valkey, the mock provider and the gateway (1 uvicorn worker,
`EMBEDDING_THREADS=1`, `OPENBLAS_NUM_THREADS=1`: one core for embeddings), a paid developer, a
plain agent and, per size in --chunks, a knowledge agent with that many chunks (random vectors
and words: their meaning does not matter for speed). Every knowledge call asks a natural
30-word question (~40 tokens) that is never asked twice, so none is answered from the cache.

Per size, --rounds short rounds (--duration seconds per measurement), with httpx clients:
plain calls with one client, then knowledge calls with one client (what a knowledge call
adds, p50 and p99, and the CPU per call of the gateway's process tree, its embedding service
included, and of Postgres, from /proc); then A/B: plain calls alone, and the same beside
knowledge calls, in alternating order (AB, BA, ...) so a drift of the machine's load hits
both. The plain calls come from --plain-clients closed loops (each waits for its answer:
saturating, so any CPU the knowledge calls take shows), or with --plain-rate N at N calls per
second on a fixed schedule (an open loop below saturation, as a service sees traffic; each
latency counted from its scheduled start); the knowledge calls beside them from one closed
loop, or with --knowledge-rate M at M calls per second. The output states these conditions
(and the cores and load average) with every p99 beside knowledge calls, and how much of the
time the gateway worker waited for a CPU (its run queue, /proc/PID/schedstat).
Each round prints its plain p50/p99 alone and beside; the summary gives the median of the
rounds' p99s, alone and beside, and in how many rounds the p99 beside was the higher one
("the p99 of plain calls must not move": half of them, by chance, if it does not).
The gateway worker's RSS is printed after plain calls only and after the first knowledge call,
with that of the embedding service it started (one per host, shared by all its workers).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from common.db import create_pool
from common.domain import KnowledgeSettings
from common.migrations import migrate_url
from devstack.servers import free_port
from loadtests.retrieval_benchmark import THIRTY_WORDS, fill, percentile
from loadtests.scratch import (
    Scratch,
    cpu_seconds,
    gateway_env,
    scratch_servers,
    start,
    start_mock_provider,
    tree_cpu,
)
from tests.factories import make_account, make_agent


def question(rng: random.Random) -> str:
    """A natural 30-word question (~40 tokens), never the same twice: no cache hits."""
    return f"Order {rng.randrange(10**9)}: {THIRTY_WORDS}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_queue_seconds(pid: int) -> float:
    """How long the process's main thread has waited for a CPU while runnable (schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def children(pid: int) -> list[int]:
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]  # fmt: skip


async def call(
    client: httpx.AsyncClient, url: str, key: str, rng: random.Random | None, began: float
) -> float:
    """One call; its latency in ms from `began` (time.monotonic())."""
    content = question(rng) if rng is not None else "hello there"
    body = {"messages": [{"role": "user", "content": content}]}
    response = await client.post(url, headers={"X-AgentLink-Key": key}, json=body)
    if response.status_code != 200:
        raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")
    return (time.monotonic() - began) * 1000


async def calls(
    client: httpx.AsyncClient, url: str, key: str, until: float, rng: random.Random | None
) -> list[float]:
    """Calls one after another until `until` (a closed loop); their latencies in ms."""
    timings = []
    while time.monotonic() < until:
        timings.append(await call(client, url, key, rng, time.monotonic()))
    return timings


async def paced(
    client: httpx.AsyncClient,
    url: str,
    key: str,
    until: float,
    rng: random.Random | None,
    *,
    rate: float,
) -> list[float]:
    """Calls started on a fixed schedule, `rate` per second, until `until` (an open loop,
    whatever the answers' pace); each latency counts from the call's scheduled start, so a
    stalled gateway is not hidden by calls that were never sent (coordinated omission)."""
    started, tasks = time.monotonic(), []
    for n in itertools.count():
        due = started + n / rate
        if due >= until:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.create_task(call(client, url, key, rng, due)))
    return list(await asyncio.gather(*tasks))


async def run(
    clients: int, url: str, key: str, seconds: float, knowledge: bool, *, rate: float = 0
) -> list[float]:
    """`clients` closed loops, or with `rate` calls per second on a schedule (one open loop)."""
    until = time.monotonic() + seconds
    # A fresh seed per client and run: no question is ever asked twice, so none is cached.
    seeds = [random.randrange(2**63) for _ in range(1 if rate else clients)]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        parts = await asyncio.gather(*(
            paced(client, url, key, until, random.Random(seed) if knowledge else None, rate=rate)
            if rate else
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
    account = await make_account(db, quota=10**9, tier="paid")
    plain = await make_agent(db, leak_guard=False)
    agents = {}
    for size in sizes:
        agent = await make_agent(db, leak_guard=False, knowledge=KnowledgeSettings(enabled=True))
        began = time.perf_counter()
        await fill(db, [agent.agent_id], size)
        await db.execute("UPDATE agents SET knowledge_version = 1 WHERE id = $1", agent.agent_id)
        print(f"filled {size} chunks in {time.perf_counter() - began:.0f} s", flush=True)
        agents[size] = agent.agent_id
    await db.close()
    return account.key.plaintext, plain.agent_id, agents


@dataclass
class Round:
    plain_one: list[float]  # plain calls, one client
    knowledge_one: list[float]  # knowledge calls, one client
    plain_alone: list[float]  # plain calls, --plain-clients
    plain_beside: list[float]  # the same, with one client of knowledge calls beside them
    cpu_plain_us: float  # per plain call, gateway process tree (worker + embedding service)
    cpu_knowledge_us: float  # per knowledge call, likewise
    postgres_us: float  # Postgres' CPU per knowledge call
    worker_plain_us: float  # per plain call, the gateway worker alone (its event loop)
    worker_knowledge_us: float  # per knowledge call, likewise (the service's work excluded)
    # The share of the A/B's time the worker was runnable but waited for a CPU, alone and
    # beside: beyond a few % the box is oversubscribed, and p99 tells of its load.
    waiting_alone: float
    waiting_beside: float

    @property
    def added(self) -> tuple[float, float]:
        """What a knowledge call adds over a plain one, p50 and p99 (one client each)."""
        p50, p99 = (percentile(self.knowledge_one, q) - percentile(self.plain_one, q)
                    for q in (0.5, 0.99))  # fmt: skip
        return p50, p99


@dataclass(frozen=True)
class Load:
    """The running gateway and what its measurements need."""

    base: str
    key: str
    plain_id: str
    pids: tuple[int, int]  # the gateway's process tree (worker + embedding service), Postgres
    seconds: float
    plain_clients: int
    plain_rate: float = 0  # > 0: plain calls beside knowledge calls at this rate, open loop
    knowledge_rate: float = 0  # > 0: likewise for the knowledge calls beside them

    def plain(self, clients: int, rate: float = 0) -> Awaitable[list[float]]:
        return run(clients, self.chat(self.plain_id), self.key, self.seconds, False, rate=rate)

    def knowledge(self, agent_id: str, rate: float = 0) -> Awaitable[list[float]]:
        return run(1, self.chat(agent_id), self.key, self.seconds, True, rate=rate)

    @property
    def conditions(self) -> str:
        """How the p99 beside knowledge calls is measured: enough to reproduce it."""
        plain = (
            f"{self.plain_rate:g} plain calls/s on a fixed schedule (open loop)"
            if self.plain_rate
            else f"{self.plain_clients} closed-loop plain clients"
        )
        knowledge = (
            f"{self.knowledge_rate:g} knowledge calls/s on a fixed schedule"
            if self.knowledge_rate
            else "1 closed-loop knowledge client (saturating)"
        )
        return (f"{plain} beside {knowledge}; {self.seconds:g} s per measurement;"
                f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")  # fmt: skip

    def chat(self, agent_id: str) -> str:
        return f"{self.base}/proxy/v1/agents/{agent_id}/chat"

    async def cpu_per_call(self, work: Awaitable[list[float]]) -> tuple[list[float], list[float]]:
        """`work`'s timings and the CPU (µs) spent per call by the gateway's process tree, by
        Postgres, and by the gateway worker alone."""

        def now() -> list[float]:
            return [*(tree_cpu(pid) for pid in self.pids), cpu_seconds(self.pids[0])]

        before = now()
        timings = await work
        spent = [after - b for after, b in zip(now(), before, strict=True)]
        return timings, [seconds / len(timings) * 1e6 for seconds in spent]

    async def round(self, number: int, agent_id: str) -> Round:
        plain_one, (cpu_plain, _, worker_plain) = await self.cpu_per_call(self.plain(1))
        knowledge_one, (cpu_knowledge, postgres, worker_knowledge) = await self.cpu_per_call(
            self.knowledge(agent_id)
        )

        def alone() -> Awaitable[list[float]]:
            return self.plain(self.plain_clients, self.plain_rate)

        async def beside() -> list[float]:
            mixed, _ = await asyncio.gather(alone(), self.knowledge(agent_id, self.knowledge_rate))
            return mixed

        async def waiting(work: Awaitable[list[float]]) -> tuple[list[float], float]:
            before, began = run_queue_seconds(self.pids[0]), time.monotonic()
            timings = await work
            waited = run_queue_seconds(self.pids[0]) - before
            return timings, waited / (time.monotonic() - began)

        # A then B, B then A: a drift of the machine's load over the run hits both alike.
        if number % 2 == 0:
            (plain_alone, wait_alone), (plain_beside, wait_beside) = (
                await waiting(alone()), await waiting(beside()))  # fmt: skip
        else:
            (plain_beside, wait_beside), (plain_alone, wait_alone) = (
                await waiting(beside()), await waiting(alone()))  # fmt: skip
        return Round(plain_one, knowledge_one, plain_alone, plain_beside, cpu_plain,
                     cpu_knowledge, postgres, worker_plain, worker_knowledge, wait_alone,
                     wait_beside)  # fmt: skip


def pct(timings: list[float]) -> str:
    return f"{percentile(timings, 0.5):7.2f} {percentile(timings, 0.99):7.2f}"


async def measure(load: Load, agents: dict[int, str], rounds: int) -> None:
    pid = load.pids[0]
    await run(load.plain_clients, load.chat(load.plain_id), load.key, 2, False)  # warm-up
    print(f"gateway worker RSS, plain calls only: {rss_mib(pid):.0f} MiB")
    for size, agent_id in agents.items():
        await run(1, load.chat(agent_id), load.key, 2, True)  # warm-up: loads the model, plans
        services = ", ".join(f"{rss_mib(child):.0f}" for child in children(pid)) or "none"
        print(f"\n{size} chunks. Gateway worker RSS after knowledge calls: {rss_mib(pid):.0f}"
              f" MiB (its embedding service: {services} MiB). Times in ms, p50 p99:")  # fmt: skip
        print(f"plain calls alone and beside knowledge calls: {load.conditions}")
        plain = f"{load.plain_rate:g}/s" if load.plain_rate else str(load.plain_clients)
        print(f"round | plain alone ({plain}) | beside knowledge | knowledge (1)"
              "   | added (1)     | CPU ms/call: plain knowledge pg")  # fmt: skip
        done = []
        for number in range(rounds):
            r = await load.round(number, agent_id)
            done.append(r)
            added_p50, added_p99 = r.added
            print(f"{number + 1:>5} | {pct(r.plain_alone)}    | {pct(r.plain_beside)}  "
                  f"  | {pct(r.knowledge_one)} | {added_p50:6.2f} {added_p99:6.2f}"
                  f" | {r.cpu_plain_us / 1000:5.2f} {r.cpu_knowledge_us / 1000:5.2f}"
                  f" {r.postgres_us / 1000:5.2f}", flush=True)  # fmt: skip
        summarise(size, done)
        print(f"  measured with {load.conditions}")


def summarise(size: int, done: list[Round]) -> None:
    def median(values: Iterable[float]) -> float:
        return statistics.median(list(values))

    alone_p99 = median(percentile(r.plain_alone, 0.99) for r in done)
    beside_p99 = median(percentile(r.plain_beside, 0.99) for r in done)
    alone_p50 = median(percentile(r.plain_alone, 0.5) for r in done)
    beside_p50 = median(percentile(r.plain_beside, 0.5) for r in done)
    moved = sum(percentile(r.plain_beside, 0.99) > percentile(r.plain_alone, 0.99) for r in done)
    print(f"median of {len(done)} rounds, {size} chunks:"
          f"\n  plain p50 {alone_p50:.2f} alone vs {beside_p50:.2f} ms beside knowledge calls;"
          f" p99 {alone_p99:.2f} vs {beside_p99:.2f} ms ({beside_p99 / alone_p99:.2f}x;"
          f" higher beside in {moved} of {len(done)} rounds)"
          f"\n  a knowledge call adds p50 {median(r.added[0] for r in done):.2f} ms,"
          f" p99 {median(r.added[1] for r in done):.2f} ms; CPU per call: gateway"
          f" {median(r.cpu_knowledge_us for r in done) / 1000:.2f} ms (plain"
          f" {median(r.cpu_plain_us for r in done) / 1000:.2f} ms), of which the worker's"
          f" own {median(r.worker_knowledge_us for r in done) / 1000:.2f} ms (plain"
          f" {median(r.worker_plain_us for r in done) / 1000:.2f} ms); Postgres"
          f" {median(r.postgres_us for r in done) / 1000:.2f} ms"
          f"\n  the gateway worker waited for a CPU {median(r.waiting_alone for r in done):.0%}"
          f" of the time alone, {median(r.waiting_beside for r in done):.0%} beside (its run"
          " queue wait: more than a few % means an oversubscribed box)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", default="1000,100000")
    parser.add_argument("--duration", type=float, default=3, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--plain-clients", type=int, default=4)
    parser.add_argument("--plain-rate", type=float, default=0,
                        help="plain calls per second in the A/B (open loop); 0: --plain-clients"
                             " closed loops")  # fmt: skip
    parser.add_argument("--knowledge-rate", type=float, default=0,
                        help="knowledge calls per second beside them (open loop); 0: one"
                             " closed-loop client")  # fmt: skip
    args = parser.parse_args()
    sizes = [int(size) for size in args.chunks.split(",")]
    with scratch_servers("agentlink-knowledge-load-") as scratch:
        run_load(args, sizes, scratch)


def run_load(args: argparse.Namespace, sizes: list[int], scratch: Scratch) -> None:
    root, started = scratch.root, scratch.started
    database_url, redis_url = scratch.postgres.start(), scratch.valkey.start()
    key, plain_id, agents = asyncio.run(seed(database_url, sizes))
    mock, mock_port = start_mock_provider(root)
    started.append(mock)
    gateway_port = free_port()
    env = gateway_env(database_url, redis_url, mock_port,
                      EMBEDDING_THREADS="1", OPENBLAS_NUM_THREADS="1")  # fmt: skip
    gateway = start([sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
                     "--host", "127.0.0.1", "--port", str(gateway_port), "--loop", "uvloop",
                     "--http", "httptools", "--no-access-log", "--log-level", "warning"],
                    root / "gateway.log", gateway_port, env)  # fmt: skip
    started.append(gateway)
    assert scratch.postgres.process is not None
    postgres_pid = scratch.postgres.process.pid
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    load = Load(f"http://127.0.0.1:{gateway_port}", key, plain_id, (gateway.pid, postgres_pid),
                args.duration, args.plain_clients, args.plain_rate,
                args.knowledge_rate)  # fmt: skip
    asyncio.run(measure(load, agents, args.rounds))


if __name__ == "__main__":
    main()
