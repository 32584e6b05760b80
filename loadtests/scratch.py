"""Throwaway servers for the load harnesses and the CPU of the processes they measure: a
scratch Postgres and Valkey (`scratch_servers`), processes started against them and stopped
last first, and utime+stime / RSS of a process tree from /proc.
"""

from __future__ import annotations

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
from pathlib import Path

from devstack import servers
from devstack.servers import free_port
from tests.processes import keyring_env, mock_provider_env

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


def rss_mib(root: int | None) -> float:
    """The largest resident set in the process tree (the busiest worker's, in practice)."""
    sizes = [0]
    for pid in process_tree(root or 0):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]))
    return max(sizes) / 1024


def start(argv: list[str], log: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = servers.spawn(argv, log, run_as=None, death_signal=signal.SIGTERM, env=env)
    servers.wait_for_port(port, process, 30, log)
    return process


def start_mock_provider(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The mock LLM provider on a free port, its log in `root`: the process and the port."""
    port = free_port()
    argv = [sys.executable, "-m", "mock_provider", "--port", str(port)]
    return start(argv, root / "mock.log", port, dict(os.environ)), port


def gateway_env(
    database_url: str, redis_url: str, mock_port: int, **overrides: str
) -> dict[str, str]:
    """A gateway under load: this process's environment with the scratch storage, the tests'
    key ring (a test key, never a real one), the mock provider on `mock_port`, no access log
    and a rate limit out of the way; the settings' own timeouts (not the tests' short ones),
    and no PROMETHEUS_MULTIPROC_DIR unless a run sets its own."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return (
        env
        | {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            **keyring_env(),
            **mock_provider_env(f"http://127.0.0.1:{mock_port}"),
            "GATEWAY_ACCESS_LOG": "false",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PAID_PER_MIN": "100000000",
        }
        | overrides
    )


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


def print_log_tails(root: Path, logs: tuple[str, ...]) -> None:
    """On a failed run: the last lines of each server's log that exists, to stderr."""
    for log in logs:
        if (root / log).exists():
            tail = (root / log).read_text().splitlines()[-15:]
            print(f"--- last lines of {log}:", *tail, sep="\n", file=sys.stderr)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn stops its workers), then SIGKILL the process group spawn() gave it,
    in case a worker lingers."""
    servers.stop_process(process, signal.SIGTERM, timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
