"""One gateway app in this process, driven through ASGI directly (no HTTP server, no wrk):
the worker `loadtests/inproc.py` starts per checkout. Imports only the standard library and
the checkout's own packages (its PYTHONPATH), so an older checkout can be measured too.

Reads commands on stdin, one a line, and answers one line each on stdout:
    MODE CALLS CONCURRENCY      -> "cpu_us_per_call wall_us_per_call"
    profile MODE CALLS CONC OUT -> the same, with cProfile on, stats written to OUT
Environment: the gateway's own variables, and INPROC_PATH, INPROC_KEY and INPROC_BODY_*.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import sys
import time
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


async def _one_call(app: Any, path: str, key: str, body: bytes, state: dict[str, Any]) -> None:
    sent = False
    forever = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await forever.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path, key, body, state), receive, send)
    if status != 200:
        raise SystemExit(f"HTTP {status}")


async def _run(app: Any, body: bytes, calls: int, concurrency: int, ctx: dict[str, Any]) -> None:
    per_task = calls // concurrency

    async def loop() -> None:
        for _ in range(per_task):
            await _one_call(app, ctx["path"], ctx["key"], body, ctx["state"])

    await asyncio.gather(*(loop() for _ in range(concurrency)))


async def main() -> None:
    app = create_app()
    bodies = {"json": os.environ["INPROC_BODY_JSON"].encode(),
              "stream": os.environ["INPROC_BODY_STREAM"].encode()}  # fmt: skip
    async with app.router.lifespan_context(app) as state:
        ctx = {"path": os.environ["INPROC_PATH"], "key": os.environ["INPROC_KEY"], "state": state}
        for body in bodies.values():  # warm: records, config cache, connections
            await _run(app, body, 64, 8, ctx)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            words = line.split()
            profiler = cProfile.Profile(time.process_time) if words[0] == "profile" else None
            if profiler is not None:
                words = words[1:]
            mode, calls, concurrency = words[0], int(words[1]), int(words[2])
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            await _run(app, bodies[mode], calls, concurrency, ctx)
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if profiler is not None:
                profiler.dump_stats(words[3])
            done = calls // concurrency * concurrency
            print(f"{cpu / done * 1e6:.2f} {wall / done * 1e6:.2f}", flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
