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
Stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import orjson

from common.db import create_pool
from common.migrations import migrate_url
from common.sse import events_of
from devstack import servers
from devstack.servers import free_port
from loadtests import hotspots
from tests.factories import make_agent, make_developer, make_key

KEY_SPEC = "t1:" + "A" * 43 + "="  # tests.factories.TEST_KEYRING: a test key, never a real one
PROMPT = "You are a concise, careful assistant for AgentLink load tests. " * 6
MAX_ERROR_RATIO = 0.01
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MODES = ("json", "stream")
# Goals (issue 16): ratios to the floor measured in the same run, so they hold on any machine.
CPU_RATIO_GOAL = 2.0  # gateway CPU per call <= 2x the floor's, JSON and stream
ADDED_P50_GOAL_MS = 0.3  # gateway added p50, 1 client, <= the floor's + 0.3 ms
RSS_GOAL_MIB = 80  # per gateway worker

# wrk prints one machine-readable line from done(); latency percentiles are in microseconds.
WRK_LUA = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Target:
    name: str  # "mock" | "floor" | "gateway" | "baseline"
    url: str
    headers: dict[str, str]
    body: dict[str, bytes]  # by mode
    root_pid: int | None  # the process tree whose CPU time is measured
    redis_pid: int | None = None  # Valkey's, when the target uses it


@dataclass(frozen=True)
class Result:
    target: str
    mode: str
    conns: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float | None
    redis_cpu_s: float | None = None

    @property
    def cpu_us(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s / self.requests * 1e6

    @property
    def redis_cpu_us(self) -> float | None:
        return None if self.redis_cpu_s is None else self.redis_cpu_s / self.requests * 1e6


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    tree, pending = [], [root]
    while pending:
        tree.append(pid := pending.pop())
        pending += children.get(pid, [])
    return tree


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def tree_cpu(root: int | None) -> float:
    return sum(cpu_seconds(pid) for pid in process_tree(root)) if root else 0.0


def wrk(target: Target, mode: str, conns: int, seconds: int, workdir: Path) -> Result:
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items())
    script = workdir / f"{target.name}-{mode}.lua"
    script.write_text(WRK_LUA.format(body=target.body[mode].decode(), headers=headers))
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    cpu_before, redis_before = tree_cpu(target.root_pid), tree_cpu(target.redis_pid)
    done = subprocess.run([*argv, target.url], capture_output=True, text=True, check=False)
    cpu = tree_cpu(target.root_pid) - cpu_before if target.root_pid else None
    redis = tree_cpu(target.redis_pid) - redis_before if target.redis_pid else None
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    requests, duration_us, non2xx, errors, p50, p99 = (int(x) for x in line.split()[1:])
    if requests == 0 or non2xx + errors > MAX_ERROR_RATIO * requests:
        raise SystemExit(
            f"{target.name} {mode} c{conns}: {non2xx} non-2xx and {errors} socket errors in "
            f"{requests} requests; numbers measured on errors would be meaningless"
        )
    return Result(target.name, mode, conns, requests, duration_us / 1e6, p50 / 1e3, p99 / 1e3,
                  cpu, redis)  # fmt: skip


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
        developer = await make_developer(pool, quota=10**9, tier="paid")
        key = await make_key(pool, developer)
        agent = await make_agent(pool, system_prompt=PROMPT, price=Decimal("0.01"))
    finally:
        await pool.close()
    return key.plaintext, agent.agent_id


def start(argv: list[str], log: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = servers.spawn(argv, log, run_as=None, death_signal=signal.SIGTERM, env=env)
    servers.wait_for_port(port, process, 30, log)
    return process


@dataclass
class Scratch:
    """A throwaway folder with a Postgres and a Valkey of their own (not started yet), and
    the processes started against them, stopped last first."""

    root: Path
    postgres: servers.PostgresServer
    valkey: servers.ValkeyServer
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)


@contextlib.contextmanager
def scratch_servers(prefix: str) -> Iterator[Scratch]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # as root, postgres runs as `nobody` and must reach its data folder
    scratch = Scratch(
        root,
        servers.PostgresServer(root / "postgres", free_port(), durable=False),
        servers.ValkeyServer(root / "valkey", free_port(), durable=False),
    )
    try:
        yield scratch
    finally:
        for process in reversed(scratch.started):
            stop(process)
        scratch.valkey.stop()
        scratch.postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn stops its workers), then SIGKILL the process group spawn() gave it,
    in case a worker lingers."""
    servers.stop_process(process, signal.SIGTERM, timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def report(results: list[Result], concurrency: int, gateway_rss_mib: float) -> bool:
    """The table, then the gateway against the floor and the goals. True when all PASS."""
    direct = {(r.mode, r.conns): r.p50_ms for r in results if r.target == "mock"}
    print(f"\n{'target':8} {'mode':6} {'conns':>5} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'added p50':>10} {'CPU us/req':>11} {'Valkey us/req':>14}")  # fmt: skip
    for r in results:
        gap = f"{r.p50_ms - direct[r.mode, r.conns]:.3f}" if (r.mode, r.conns) in direct else ""
        gap = "" if r.target == "mock" else gap
        cpu = "" if r.cpu_us is None else f"{r.cpu_us:11.0f}"
        redis = "" if r.redis_cpu_us is None else f"{r.redis_cpu_us:14.0f}"
        print(f"{r.target:8} {r.mode:6} {r.conns:5d} {r.requests / r.seconds:8.0f} "
              f"{r.p50_ms:8.3f} {r.p99_ms:8.3f} {gap:>10} {cpu:>11} {redis}")  # fmt: skip
    by = {(r.target, r.mode, r.conns): r for r in results}
    print("\ngateway against the floor (goals: issue 16)")
    passed = True
    for mode in MODES:
        gateway_cpu = by["gateway", mode, concurrency].cpu_us or 0.0
        floor_cpu = by["floor", mode, concurrency].cpu_us or 1.0
        ratio = gateway_cpu / floor_cpu
        passed &= verdict(
            ratio <= CPU_RATIO_GOAL,
            f"{mode:6} CPU per call, c{concurrency}",
            f"{ratio:4.2f}x the floor ({gateway_cpu:.0f} / {floor_cpu:.0f} us; "
            f"goal <= {CPU_RATIO_GOAL}x)",
        )
    for mode in MODES:
        mock = by["mock", mode, 1].p50_ms
        gateway_added = by["gateway", mode, 1].p50_ms - mock
        floor_added = by["floor", mode, 1].p50_ms - mock
        over = gateway_added - floor_added
        passed &= verdict(
            over <= ADDED_P50_GOAL_MS,
            f"{mode:6} added p50, 1 client",
            f"floor's + {over:.3f} ms ({gateway_added:.3f} / {floor_added:.3f} ms; "
            f"goal <= + {ADDED_P50_GOAL_MS} ms)",
        )
    passed &= verdict(
        gateway_rss_mib < RSS_GOAL_MIB,
        "RSS per gateway worker",
        f"{gateway_rss_mib:.1f} MiB (goal < {RSS_GOAL_MIB} MiB)",
    )
    if any(r.target == "baseline" for r in results):
        compare_baseline(by, concurrency)
    return passed


def compare_baseline(by: dict[tuple[str, str, int], Result], concurrency: int) -> None:
    """This checkout's gateway against the baseline's, measured in turn in the same run."""
    print("\ngateway against the baseline checkout (same run, in turn: ours, it, it, ours)")
    for mode in MODES:
        ours, base = by["gateway", mode, concurrency], by["baseline", mode, concurrency]
        ratio = (ours.cpu_us or 0.0) / (base.cpu_us or 1.0)
        print(f"      {mode:6} CPU per call, c{concurrency:<3}   {ratio:4.2f}x the baseline "
              f"({ours.cpu_us or 0:.0f} / {base.cpu_us or 0:.0f} us)")  # fmt: skip
    for mode in MODES:
        gap = by["gateway", mode, 1].p50_ms - by["baseline", mode, 1].p50_ms
        print(f"      {mode:6} p50, 1 client       {gap:+.3f} ms against the baseline")


def verdict(ok: bool, name: str, detail: str) -> bool:
    print(f"{'PASS' if ok else 'MISS'}  {name:28} {detail}")
    return ok


def rss_mib(root: int | None) -> float:
    """The largest resident set in the process tree (the busiest worker's, in practice)."""
    sizes = [0]
    for pid in process_tree(root or 0):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]))
    return max(sizes) / 1024


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


def uvicorn_argv(factory: str, port: int, workers: int) -> list[str]:
    # -P: the current folder stays off sys.path, so a baseline's PYTHONPATH decides the code.
    return [sys.executable, "-P", "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
            "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning", "--workers", str(workers)]  # fmt: skip


def start_apps(
    args: argparse.Namespace, root: Path, database_url: str, redis_url: str, redis_pid: int
) -> tuple[list[Target], list[subprocess.Popen[bytes]]]:
    """Seed the database, then start the mock provider, the floor and the gateway."""
    key, agent_id = asyncio.run(seed(database_url))
    mock_port, floor_port, gateway_port = free_port(), free_port(), free_port()
    mock_argv = [sys.executable, "-m", "mock_provider", "--port", str(mock_port)]
    mock_process = start(mock_argv, root / "mock.log", mock_port, dict(os.environ))
    mock_url = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
    started = [mock_process]
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "AGENTLINK_ENCRYPTION_KEYS": KEY_SPEC, "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": "t1",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1", "OPENAI_API_KEY": "mock",
           "GATEWAY_ACCESS_LOG": "false", "LOG_LEVEL": "WARNING",
           "RATE_LIMIT_PAID_PER_MIN": "100000000"}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if args.workers > 1:
        (root / "prometheus").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(root / "prometheus")
    floor_env = {**os.environ, "FLOOR_UPSTREAM_URL": mock_url}
    floor_argv = uvicorn_argv("loadtests.floor:create_app", floor_port, args.workers)
    gateway_argv = uvicorn_argv("gateway.app:create_app", gateway_port, args.workers)
    baseline_port = free_port()
    baseline_argv = uvicorn_argv("gateway.app:create_app", baseline_port, args.workers)
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


def merged(first: Result, second: Result) -> Result:
    """Two runs of one target as one: counts and CPU summed, percentiles the mean of both."""

    def total(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a + b

    return Result(first.target, first.mode, first.conns, first.requests + second.requests,
                  first.seconds + second.seconds, (first.p50_ms + second.p50_ms) / 2,
                  (first.p99_ms + second.p99_ms) / 2, total(first.cpu_s, second.cpu_s),
                  total(first.redis_cpu_s, second.redis_cpu_s))  # fmt: skip


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
        for log in ("gateway.log", "baseline.log", "floor.log", "mock.log"):
            if (root / log).exists():
                tail = (root / log).read_text().splitlines()[-15:]
                print(f"--- last lines of {log}:", *tail, sep="\n", file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
