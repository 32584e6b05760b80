"""One gateway app in this process, driven through ASGI directly (no HTTP server, no wrk):
the worker `loadtests/inproc.py` starts per checkout. Imports only the standard library and
the checkout's own packages (its PYTHONPATH), so an older checkout can be measured too.

Reads commands on stdin, one a line, and answers one number each on stdout:
    cpu MODE CALLS CONCURRENCY        -> CPU microseconds per call
    profile MODE CALLS CONC OUT       -> the same, with cProfile on, stats written to OUT
    callgrind MODE CALLS CONC OUTFILE -> instructions per call (the worker runs under
                                         callgrind, OUTFILE its --callgrind-out-file)
Environment: the gateway's own variables, and INPROC_PATH, INPROC_KEY and INPROC_BODY_*.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.app import create_app  # the checkout's (its PYTHONPATH)


def _scope(path: str, key: str, body: bytes, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"x-agentlink-key", key.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": state.copy(),  # uvicorn hands each request a shallow copy
    }


class _Cycle:
    """One request's `receive` as uvicorn's request cycle gives it: a bound method of an
    object with `disconnected`, which the gateway reads instead of calling `receive`
    (gateway/disconnect.py), so the harness measures what a uvicorn worker runs."""

    __slots__ = ("_body", "_forever", "_sent", "disconnected")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._sent = False
        self._forever = asyncio.Event()
        self.disconnected = False

    async def receive(self) -> dict[str, Any]:
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self._forever.wait()
        return {"type": "http.disconnect"}


async def _one_call(app: Any, path: str, key: str, body: bytes, state: dict[str, Any]) -> None:
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path, key, body, state), _Cycle(body).receive, send)
    if status != 200:
        raise SystemExit(f"HTTP {status}")


async def _run(app: Any, body: bytes, calls: int, concurrency: int, ctx: dict[str, Any]) -> None:
    per_task = calls // concurrency

    async def loop() -> None:
        for _ in range(per_task):
            await _one_call(app, ctx["path"], ctx["key"], body, ctx["state"])

    await asyncio.gather(*(loop() for _ in range(concurrency)))


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    """The ASGI lifespan protocol, as uvicorn drives it; yields the lifespan state."""
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"}}
    task = asyncio.create_task(app({**scope, "state": state}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    if (message := await outbox.get())["type"] != "lifespan.startup.complete":
        raise SystemExit(f"start-up failed: {message}")
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


async def main() -> None:
    app = create_app()
    bodies = {"json": os.environ["INPROC_BODY_JSON"].encode(),
              "stream": os.environ["INPROC_BODY_STREAM"].encode()}  # fmt: skip
    async with lifespan(app) as state:
        ctx = {"path": os.environ["INPROC_PATH"], "key": os.environ["INPROC_KEY"], "state": state}
        for body in bodies.values():  # warm: records, config cache, connections
            await _run(app, body, 64, 8, ctx)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            kind, mode, calls, concurrency, *out = line.split()
            per_call = await _measure(kind, app, bodies[mode], calls=int(calls),
                                      concurrency=int(concurrency), ctx=ctx, out=out)  # fmt: skip
            print(f"{per_call:.2f}", flush=True)


async def _measure(
    kind: str, app: Any, body: bytes, *, calls: int, concurrency: int, ctx: dict[str, Any],
    out: list[str],
) -> float:  # fmt: skip
    """CPU microseconds (`cpu`, `profile`) or instructions (`callgrind`) per call."""
    done = calls // concurrency * concurrency
    if kind == "callgrind":  # under valgrind --tool=callgrind --instr-atstart=no
        _callgrind("--zero", "--instr=on")
        await _run(app, body, calls, concurrency, ctx)
        _callgrind("--instr=off", "--dump")
        dumps = Path(out[0]).parent.glob(Path(out[0]).name + "*")
        newest = max(dumps, key=lambda path: path.stat().st_mtime)
        totals = re.search(r"^totals: (\d+)", newest.read_text(), re.MULTILINE)
        return int(totals[1]) / done if totals else 0.0
    profiler = cProfile.Profile(time.process_time) if kind == "profile" else None
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    await _run(app, body, calls, concurrency, ctx)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(out[0])
    return (time.process_time() - cpu) / done * 1e6


def _callgrind(*options: str) -> None:
    for option in options:
        subprocess.run(["callgrind_control", option, str(os.getpid())], check=True,
                       capture_output=True)  # fmt: skip


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
