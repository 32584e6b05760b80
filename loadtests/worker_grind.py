"""Instructions per call of a real gateway worker (uvicorn, uvloop, httptools) under wrk, A/B
between checkouts: what `loadtests.inproc --callgrind` counts plus everything only the real
process runs (the HTTP server, socket reads and writes, the disconnect probe, GC at its real
allocation rate).

    python -m loadtests.worker_grind [--baseline CHECKOUT] [--seconds 20] [--concurrency 8]
                                     [--modes json,stream] [--keep DIR]

A throwaway Postgres and Valkey, the seeded developer and agent of `./dev load`, the mock
provider; then each checkout's gateway, one uvicorn worker under valgrind's callgrind
(instrumentation off until its first measurement). Per mode and checkout: wrk warms it, the
counters are zeroed, wrk runs `--seconds`, the counts are dumped, and the report divides the
user-space instructions by the requests wrk completed (the few calls wrk cuts off at its end
weigh `concurrency` partial calls among hundreds). Kernel work is not counted: for that,
compare utime/stime in `./dev load`. `--keep DIR` copies each dump there (callgrind_annotate
reads them; Python functions show only as the interpreter's C functions).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
from pathlib import Path

from devstack import servers
from devstack.servers import free_port
from loadtests.run import CHECKOUT, request_bodies, seed, uvicorn_argv
from loadtests.scratch import gateway_env, scratch_servers, start_mock_provider
from loadtests.wrk import MODES, Target, wrk


def callgrind_control(pid: int, *options: str) -> None:
    for option in options:
        subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def newest_dump(out: Path) -> tuple[int, Path]:
    """The instructions counted in the latest dump of `out` (callgrind numbers each dump)."""
    dumps = [path for path in out.parent.glob(out.name + "*") if path.is_file()]
    newest = max(dumps, key=lambda path: path.stat().st_mtime)
    totals = re.search(r"^totals: (\d+)", newest.read_text(), re.MULTILINE)
    return (int(totals[1]) if totals else 0), newest


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.worker_grind",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--seconds", type=int, default=20, help="wrk's run per measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--keep", type=Path, help="copy the callgrind dumps here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch_servers("agentlink-grind-") as scratch:
        root = scratch.root
        database_url, redis_url = scratch.postgres.start(), scratch.valkey.start()
        key, agent_id = asyncio.run(seed(database_url))
        mock, mock_port = start_mock_provider(root)
        scratch.started.append(mock)
        env = gateway_env(
            database_url, redis_url, mock_port, RATE_LIMIT_PAID_PER_MIN="1000000000",
            # Generous: under callgrind a call takes ~50-100x longer.
            REDIS_SOCKET_TIMEOUT_S="60", UPSTREAM_TIMEOUT_S="120",
            STREAM_FIRST_BYTE_TIMEOUT_S="120", STREAM_IDLE_TIMEOUT_S="120",
        )  # fmt: skip
        checkouts = [("ours", CHECKOUT)] + ([("baseline", args.baseline)] if args.baseline else [])
        gateways = []
        for name, checkout in checkouts:
            port, out = free_port(), root / f"{name}.callgrind"
            valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                        f"--callgrind-out-file={out}"]  # fmt: skip
            argv = [*valgrind, *uvicorn_argv("gateway.app:create_app", port, 1, checkout)]
            log = root / f"{name}.log"
            process = servers.spawn(argv, log, run_as=None, death_signal=signal.SIGTERM,
                                    env={**env, "PYTHONPATH": str(checkout.resolve())})  # fmt: skip
            scratch.started.append(process)
            servers.wait_for_port(port, process, 600, log)  # imports, under valgrind
            url = f"http://127.0.0.1:{port}/proxy/v1/agents/{agent_id}/chat"
            target = Target(name, url, {"X-AgentLink-Key": key}, request_bodies(False, 0), None)
            gateways.append((target, process.pid, out))
        for mode in args.modes.split(","):
            for target, pid, out in gateways:
                callgrind_control(pid, "--instr=on")
                wrk(target, mode, args.concurrency, 5, root)  # warm, instrumented
                callgrind_control(pid, "--zero")
                result = wrk(target, mode, args.concurrency, args.seconds, root)
                callgrind_control(pid, "--dump", "--instr=off")
                total, dump = newest_dump(out)
                print(f"{mode:6} {target.name:8} {total / result.requests:12,.0f} Ir/call "
                      f"({result.requests} calls)", flush=True)  # fmt: skip
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(dump, args.keep / f"{target.name}-{mode}.callgrind")


if __name__ == "__main__":
    main()
