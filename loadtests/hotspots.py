"""Record and summarise py-spy profiles of a gateway worker.

    python -m loadtests.hotspots STACKS.txt [...]   # summarise raw stacks recorded earlier

`record` samples in blocking mode (--nonblocking tears many stacks) with native frames, so
time in C (syscalls, uvloop, the interpreter) shows. `summarise` keeps the main thread: py-spy
counts uvicorn's pong thread, blocked in recv, as busy. Time in C is charged to the package of
the nearest Python frame above it.

py-spy samples wall time: a thread that is runnable but preempted counts as busy. When wrk,
the mock, Valkey and the gateway share two cores, a socket write() that wakes the peer often
gets the writer preempted, and `write` then looks far costlier than /proc's stime says. Read
the shares next to the harness's CPU per request, or profile with `--workers 1`.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Inclusive shares worth knowing on the hot path: label -> a frame name to look for.
MILESTONES = {
    "provider call (httpx)": "OpenAICompatibleProvider.",
    "admission (admit.lua)": "Admitter.admit (",
    "commit (commit.lua)": "Admitter.commit (",
    "request parse": "parse_chat_request (",
    "metrics": "(prometheus_client/",
}
_LINE = re.compile(r"(:\d+)?\)$")


def record(pid: int, seconds: int, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start py-spy on `pid` for `seconds`; raw (collapsed) stacks go to `out`."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate)]
    argv += ["--native", "--threads", "--format", "raw", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(raw: Path, top: int = 12) -> str:
    own: collections.Counter[str] = collections.Counter()
    package: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        if stack.startswith("thread ") and not stack.split(";", 1)[0].endswith("MainThread"):
            continue
        frames = stack.split(";")
        function, _, where = frames[-1].partition(" (")
        file = _LINE.sub("", where).rsplit("/", 1)[-1]
        own[f"{function} ({file})"] += samples
        python = next((f for f in reversed(frames) if ".py:" in f), "")
        path = python.partition(" (")[2]
        package[path.split("/")[0] if "/" in path else "other"] += samples
        for label, frame in MILESTONES.items():
            if frame in stack:
                inclusive[label] += samples
    total = sum(own.values()) or 1
    lines = [f"{raw}: {total} samples (main thread)"]
    shares = (f"{name} {count / total:.0%}" for name, count in package.most_common(8))
    lines.append("  self time by package: " + ", ".join(shares))
    shares = (f"{label} {inclusive[label] / total:.0%}" for label in MILESTONES)
    lines.append("  inclusive: " + ", ".join(shares))
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in own.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summarise(Path(name)))
