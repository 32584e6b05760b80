"""Load harness: the mock provider direct, through the floor and through the gateway, on this
machine, loopback only.

    python -m loadtests.run [--duration 5] [--concurrency 32] [--workers 1] [--quick]
                            [--chunk-delay-ms 0] [--profile DIR] [--baseline CHECKOUT]

Starts a throwaway Postgres + Valkey, a paid developer with a huge quota and one agent, the
mock provider (1 worker), the floor (loadtests/floor.py: the same server stack with none of
our logic, N workers) and the gateway (uvicorn, N workers), then drives each with `wrk`:
non-streaming JSON and 20-chunk streams, at fixed concurrency and with one connection. Prints
RPS, p50/p99, the p50 each proxy adds, the CPU time per request of each proxy (utime+stime of
the uvicorn master and its workers, from /proc) and of Valkey, the gateway's figures as
ratios to the floor's with PASS/MISS against the goals, and the gateway workers' RSS.
With `--baseline`, a second gateway from another checkout of the repository is measured
beside this one, run for run, and the report adds this gateway's figures as ratios to it.
Stops everything it started. The pieces: loadtests/scratch.py (servers, processes, CPU from
/proc), loadtests/wrk.py (one measurement), loadtests/report.py (the ratios and the goals).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import orjson

from common.db import create_pool
from common.migrations import migrate_url
from common.sse import events_of
from devstack.servers import free_port
from loadtests import hotspots
from loadtests.report import report
from loadtests.scratch import (
    Scratch,
    cpu_seconds,
    gateway_env,
    print_log_tails,
    process_tree,
    rss_mib,
    scratch_servers,
    start,
    start_mock_provider,
    stop,
)
from loadtests.wrk import MODES, Result, Target, merged, wrk
from tests.factories import make_account, make_agent

PROMPT = "You are a concise, careful assistant for AgentLink load tests. " * 6


def request_bodies(direct: bool, chunk_delay_ms: int) -> dict[str, bytes]:
    """Gateway bodies carry the developer's message; direct ones what the gateway sends on."""
    question = f"Explain pooling briefly. [[mock chunks=20 chunk_delay_ms={chunk_delay_ms}]]"
    messages = [{"role": "user", "content": question}]
    body: dict[str, object] = {"messages": messages}
    if direct:
        messages = [{"role": "system", "content": PROMPT}, *messages]
        body = {"model": "mock-model", "messages": messages, "temperature": 0.3}
    stream = {**body, "stream": True}
    if direct:
        stream["stream_options"] = {"include_usage": True}
    return {"json": orjson.dumps(body), "stream": orjson.dumps(stream)}


def preflight(target: Target) -> None:
    """One request per mode: 200, a chat completion, a complete 20-chunk stream."""
    with httpx.Client(timeout=10) as client:
        for mode, body in target.body.items():
            answer = client.post(target.url, content=body, headers=target.headers)
            if answer.status_code != 200:
                raise SystemExit(f"{target.name} {mode}: HTTP {answer.status_code} {answer.text}")
            if mode == "json":
                assert answer.json()["object"] == "chat.completion", answer.text
            else:
                events = [event.data for event in events_of(answer.content)]
                assert events[-1] == b"[DONE]", answer.text[-200:]
                # The leak guard may merge deltas that arrive in one read (the mock writes a
                # whole stream at once), so check the content, not the event count.
                text = "".join(
                    str(orjson.loads(e)["choices"][0]["delta"].get("content") or "")
                    for e in events[:-1]
                    if b'"choices":[{' in e
                )
                assert text.startswith("Mock reply to: "), text


async def seed(database_url: str) -> tuple[str, str]:
    """Migrations, a paid developer with a huge quota, its key, one agent at $0.01."""
    await migrate_url(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        account = await make_account(pool, quota=10**9, tier="paid")
        agent = await make_agent(pool, system_prompt=PROMPT, price=Decimal("0.01"))
    finally:
        await pool.close()
    return account.key.plaintext, agent.agent_id


def profile(gateway: Target, seconds: int, concurrency: int, out: Path, workdir: Path) -> None:
    """py-spy on the busiest gateway worker while wrk drives each mode."""
    out.mkdir(parents=True, exist_ok=True)
    for mode in MODES:
        tree = process_tree(gateway.root_pid or 0)
        before = {pid: cpu_seconds(pid) for pid in tree}
        wrk(gateway, mode, concurrency, 1, workdir)
        busiest = max(tree, key=lambda pid: cpu_seconds(pid) - before[pid])
        spy = hotspots.record(busiest, seconds, out / f"{mode}.txt")
        wrk(gateway, mode, concurrency, seconds + 1, workdir)
        spy.wait(30)
        print(f"\npy-spy, {mode}, worker {busiest}: " + hotspots.summarise(out / f"{mode}.txt"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument(
        "--quick", action="store_true", help="1 s per measurement: the ratios in a few seconds"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn workers of the floor and the gateway"
    )
    parser.add_argument(
        "--chunk-delay-ms", type=int, default=0, help="mock pause between stream chunks"
    )
    parser.add_argument("--profile", type=Path, help="then run py-spy; write its stacks here")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another commit (git worktree add --detach DIR REV): its gateway "
        "is measured beside this one, with this environment's packages",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration = 1
    return args


CHECKOUT = Path(__file__).resolve().parents[1]  # the repository these load tests belong to


def uvicorn_argv(factory: str, port: int, workers: int, checkout: Path = CHECKOUT) -> list[str]:
    """The app's code comes from `checkout`: uvicorn puts --app-dir (default: the current
    folder) first on sys.path, ahead of PYTHONPATH, so without it a baseline would run this
    checkout's code (as every `--baseline` run did before 2026-12-04)."""
    return [sys.executable, "-P", "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
            "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning", "--workers", str(workers),
            "--app-dir", str(checkout.resolve())]  # fmt: skip


def start_apps(
    args: argparse.Namespace, root: Path, database_url: str, redis_url: str, redis_pid: int
) -> tuple[list[Target], list[subprocess.Popen[bytes]]]:
    """Seed the database, then start the mock provider, the floor and the gateway."""
    key, agent_id = asyncio.run(seed(database_url))
    mock_process, mock_port = start_mock_provider(root)
    floor_port, gateway_port = free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
    started = [mock_process]
    env = gateway_env(database_url, redis_url, mock_port)
    if args.workers > 1:
        (root / "prometheus").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(root / "prometheus")
    floor_env = {**os.environ, "FLOOR_UPSTREAM_URL": mock_url}
    floor_argv = uvicorn_argv("loadtests.floor:create_app", floor_port, args.workers)
    gateway_argv = uvicorn_argv("gateway.app:create_app", gateway_port, args.workers)
    baseline_port = free_port()
    baseline_argv = uvicorn_argv(
        "gateway.app:create_app", baseline_port, args.workers, args.baseline or CHECKOUT
    )
    baseline_env = {**env, "PYTHONPATH": str(args.baseline.resolve())} if args.baseline else {}
    if baseline_env.get("PROMETHEUS_MULTIPROC_DIR"):
        (root / "prometheus-baseline").mkdir()
        baseline_env["PROMETHEUS_MULTIPROC_DIR"] = str(root / "prometheus-baseline")
    try:
        started.append(start(floor_argv, root / "floor.log", floor_port, floor_env))
        started.append(start(gateway_argv, root / "gateway.log", gateway_port, env))
        if baseline_env:
            started.append(start(baseline_argv, root / "baseline.log", baseline_port, baseline_env))
    except BaseException:
        for process in reversed(started):
            stop(process)
        raise
    floor_url = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
    gateway_url = f"http://127.0.0.1:{gateway_port}/proxy/v1/agents/{agent_id}/chat"
    direct = request_bodies(True, args.chunk_delay_ms)
    ours = request_bodies(False, args.chunk_delay_ms)
    targets = [
        Target("mock", mock_url, {}, direct, None),
        Target("floor", floor_url, {}, direct, started[1].pid),
        Target("gateway", gateway_url, {"X-AgentLink-Key": key}, ours, started[2].pid, redis_pid),
    ]
    if baseline_env:
        baseline_url = gateway_url.replace(f":{gateway_port}/", f":{baseline_port}/")
        targets.append(Target("baseline", baseline_url, {"X-AgentLink-Key": key}, ours,
                              started[3].pid, redis_pid))  # fmt: skip
    return targets, started


def measure(targets: list[Target], args: argparse.Namespace, root: Path) -> list[Result]:
    load = os.getloadavg()[0]
    print(f"floor and gateway: {args.workers} worker(s) each; mock: 1 worker; wrk -t1; "
          f"{args.duration} s per run; load average before: {load:.2f}", flush=True)  # fmt: skip
    for target in targets[1:]:  # warm every worker: records, config cache, connections
        for mode in MODES:
            wrk(target, mode, args.concurrency, min(2, args.duration), root)
    results = []
    for conns in (args.concurrency, 1):
        for mode in MODES:
            for target in targets:
                if target.name == "baseline":
                    continue  # measured with the gateway, below
                if target.name == "gateway" and targets[-1].name == "baseline":
                    pair = (target, targets[-1])
                    results += ab_ba(pair, mode, conns, args.duration, root)
                else:
                    results.append(wrk(target, mode, conns, args.duration, root))
                print(".", end="", flush=True)
    return results


def ab_ba(
    pair: tuple[Target, Target], mode: str, conns: int, seconds: int, workdir: Path
) -> list[Result]:
    """Ours, the baseline, the baseline, ours: whichever runs first or second in a pair
    (the machine warming up or slowing down) weighs on both alike. Each Result sums two."""
    ours, baseline = pair
    a1, b1 = wrk(ours, mode, conns, seconds, workdir), wrk(baseline, mode, conns, seconds, workdir)
    b2, a2 = wrk(baseline, mode, conns, seconds, workdir), wrk(ours, mode, conns, seconds, workdir)
    return [merged(a1, a2), merged(b1, b2)]


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        if os.geteuid() != 0:
            raise SystemExit("wrk is missing: install it (Debian: sudo apt-get install -y wrk)")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    with scratch_servers("agentlink-load-") as scratch:
        run_load(args, scratch)


def run_load(args: argparse.Namespace, scratch: Scratch) -> None:
    root, valkey = scratch.root, scratch.valkey
    try:
        database_url, redis_url = scratch.postgres.start(), valkey.start()
        assert valkey.process is not None
        targets, started = start_apps(args, root, database_url, redis_url, valkey.process.pid)
        scratch.started.extend(started)
        for target in targets:
            preflight(target)
        gateway = targets[2]
        report(measure(targets, args, root), args.concurrency, rss_mib(gateway.root_pid))
        if args.profile is not None:
            profile(gateway, args.duration * 2, args.concurrency, args.profile, root)
    except BaseException:
        print_log_tails(root, ("gateway.log", "baseline.log", "floor.log", "mock.log"))
        raise


if __name__ == "__main__":
    main()
