"""CPU per call of the gateway app itself, driven through ASGI in-process, A/B between checkouts.

    python -m loadtests.inproc [--baseline CHECKOUT] [--rounds 7] [--calls 2000]
                               [--concurrency 16] [--profile DIR]

A throwaway Postgres and Valkey, the seeded developer and agent of `./dev load`, the mock
provider; then one worker process per checkout (`loadtests/inproc_worker.py`: the app's
lifespan and its handler called directly, with real Redis round trips and real HTTP to the
mock), each measuring its own CPU time per call over `--calls` calls at `--concurrency`.
The two checkouts take turns, round after round (A B B A ...), and the report gives the
median CPU per call of each and their ratio, per mode: no HTTP server, no wrk, no other
process's CPU in the figure, so a few percent show on a shared box where `./dev load`'s
wrk runs swing by more. `--profile DIR` then writes cProfile stats (CPU clock) of one run
per mode and checkout, and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import statistics
import subprocess
import sys
from pathlib import Path

from loadtests.run import request_bodies, seed
from loadtests.scratch import gateway_env, scratch_servers, start_mock_provider
from loadtests.wrk import MODES

WORKER = Path(__file__).with_name("inproc_worker.py")


class Worker:
    def __init__(
        self, name: str, checkout: Path, env: dict[str, str], log: Path, *, callgrind: bool
    ) -> None:
        self.name = name
        self.log = log
        self.callgrind_out = log.with_suffix(".callgrind")
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={self.callgrind_out}"]  # fmt: skip
        self.process = subprocess.Popen(
            [*(valgrind if callgrind else []), sys.executable, "-P", str(WORKER)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("wb"),
            env={**env, "PYTHONPATH": str(checkout.resolve())}, text=True, cwd=checkout,
        )  # fmt: skip
        if self._line() != "ready":
            tail = [line[-400:] for line in log.read_text(errors="replace").splitlines()[-5:]]
            raise SystemExit("\n".join([f"{name} worker failed to start:", *tail]))

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def run(self, command: str) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self._line()
        if not answer:
            tail = self.log.read_text(errors="replace").splitlines()[-20:]
            raise SystemExit("\n".join([f"{self.name} worker died:", *tail]))
        return float(answer)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.inproc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--profile", type=Path, help="write cProfile stats here")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per call under valgrind's callgrind instead of CPU time "
        "(deterministic, so it holds on a loaded box; slow: use --calls 200 --rounds 1)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    modes = args.modes.split(",")
    with scratch_servers("agentlink-inproc-") as scratch:
        root = scratch.root
        database_url, redis_url = scratch.postgres.start(), scratch.valkey.start()
        key, agent_id = asyncio.run(seed(database_url))
        mock, mock_port = start_mock_provider(root)
        scratch.started.append(mock)
        bodies = request_bodies(False, 0)
        env = gateway_env(
            database_url, redis_url, mock_port, RATE_LIMIT_PAID_PER_MIN="1000000000",
            # Generous: under callgrind, on a loaded box, a call takes ~100x longer.
            REDIS_SOCKET_TIMEOUT_S="60", UPSTREAM_TIMEOUT_S="120",
            STREAM_FIRST_BYTE_TIMEOUT_S="120", STREAM_IDLE_TIMEOUT_S="120",
            INPROC_PATH=f"/proxy/v1/agents/{agent_id}/chat", INPROC_KEY=key,
            INPROC_BODY_JSON=bodies["json"].decode(), INPROC_BODY_STREAM=bodies["stream"].decode(),
        )  # fmt: skip
        checkouts = [("ours", Path.cwd())]
        if args.baseline:
            checkouts.append(("baseline", args.baseline))
        workers = [
            Worker(n, c, env, root / f"{n}.log", callgrind=args.callgrind) for n, c in checkouts
        ]
        kind, unit = ("callgrind", "Ir") if args.callgrind else ("cpu", "us")
        try:
            print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
            figures: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.rounds):
                order = workers if round_ % 2 == 0 else workers[::-1]
                for mode in modes:
                    for worker in order:
                        command = f"{kind} {mode} {args.calls} {args.concurrency}"
                        cpu = worker.run(f"{command} {worker.callgrind_out}")
                        figures.setdefault((worker.name, mode), []).append(cpu)
                print(".", end="", flush=True)
            print()
            for mode in modes:
                ours = statistics.median(figures["ours", mode])
                line = f"{mode:6} ours {ours:7.1f} {unit}/call"
                if args.baseline:
                    base = statistics.median(figures["baseline", mode])
                    ours_runs, base_runs = figures["ours", mode], figures["baseline", mode]
                    pairs = [a / b for a, b in zip(ours_runs, base_runs, strict=True)]
                    line += (f"   baseline {base:7.1f} {unit}/call   ratio {ours / base:.3f} "
                             f"(per-round median {statistics.median(pairs):.3f}, "
                             f"min {min(pairs):.3f}, max {max(pairs):.3f})")  # fmt: skip
                print(line)
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for worker in workers:
                    for mode in modes:
                        out = args.profile.resolve() / f"{worker.name}-{mode}.prof"
                        worker.run(f"profile {mode} {args.calls} {args.concurrency} {out}")
                        print(f"\n== {worker.name} {mode} (cProfile, CPU clock)")
                        stats = pstats.Stats(str(out))
                        stats.sort_stats("tottime").print_stats(25)
        finally:
            for worker in workers:
                worker.stop()


if __name__ == "__main__":
    main()
