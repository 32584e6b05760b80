"""One `wrk` measurement of a target: RPS, p50/p99 and the CPU its process tree (and Valkey's)
spent, refused when more than 1% of the requests failed."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadtests.scratch import tree_cpu

MAX_ERROR_RATIO = 0.01
MODES = ("json", "stream")

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


def merged(first: Result, second: Result) -> Result:
    """Two runs of one target as one: counts and CPU summed, percentiles the mean of both."""

    def total(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a + b

    return Result(first.target, first.mode, first.conns, first.requests + second.requests,
                  first.seconds + second.seconds, (first.p50_ms + second.p50_ms) / 2,
                  (first.p99_ms + second.p99_ms) / 2, total(first.cpu_s, second.cpu_s),
                  total(first.redis_cpu_s, second.redis_cpu_s))  # fmt: skip
