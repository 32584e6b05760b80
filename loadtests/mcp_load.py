"""Load comparison for `/mcp`: a tool call against a chat call through the same gateway, and
the official MCP SDK's server with a tool that does nothing, on this machine, loopback only.

    python -m loadtests.mcp_load [--duration 5] [--concurrency 16]

One gateway worker and one SDK server worker, both driven by `wrk` at the same concurrency:
gateway chat JSON, gateway `tools/call` (JSON), gateway `tools/call` with a progress token
(the answer streamed as progress notifications), gateway chat stream, and the SDK server's
echo tool. Prints RPS, p50/p99 and CPU time per request of each server's process tree, and
the ratios that matter: what MCP framing adds to a chat call, and what the SDK's server costs
for a call that does no work against our whole pipeline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import orjson

from common.tool_names import tool_name
from devstack import servers
from devstack.servers import free_port
from loadtests.run import start_apps, uvicorn_argv
from loadtests.scratch import print_log_tails, start, stop
from loadtests.wrk import Result, Target, wrk

VERSION = "2025-11-25"
QUESTION = "Explain pooling briefly. [[mock chunks=20]]"


def call_body(name: str, *, progress: bool) -> bytes:
    params: dict[str, object] = {"name": name, "arguments": {"prompt": QUESTION}}
    if progress:
        params["_meta"] = {"progressToken": "load"}
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})


def mcp_headers(key: str | None) -> dict[str, str]:
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": VERSION,
        "Content-Type": "application/json",
    }
    if key is not None:
        headers["X-AgentLink-Key"] = key
    return headers


def open_session(url: str, headers: dict[str, str]) -> str:
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": VERSION, "capabilities": {},
                       "clientInfo": {"name": "load", "version": "0"}}}  # fmt: skip
    answer = httpx.post(url, json=body, headers=headers, timeout=10)
    answer.raise_for_status()
    return answer.headers.get("mcp-session-id", "")


def preflight(target: Target) -> None:
    """Every mode answers a tool result that is not an error."""
    with httpx.Client(timeout=10) as client:
        for mode, body in target.body.items():
            answer = client.post(target.url, content=body, headers=target.headers)
            assert answer.status_code == 200, (target.name, mode, answer.text)
            last = answer.text
            if answer.headers["content-type"].startswith("text/event-stream"):
                last = [e for e in answer.text.split("\n\n") if e][-1].split("data: ", 1)[1]
            result = orjson.loads(last)["result"]
            assert not result.get("isError"), (target.name, mode, result)


def report(results: list[Result]) -> None:
    print(f"\n{'target':12} {'mode':9} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}")
    for r in results:
        cpu = "" if r.cpu_us is None else f"{r.cpu_us:11.0f}"
        print(f"{r.target:12} {r.mode:9} {r.requests / r.seconds:8.0f} {r.p50_ms:8.3f} "
              f"{r.p99_ms:8.3f} {cpu}")  # fmt: skip
    cpu = {(r.target, r.mode): r.cpu_us or 0.0 for r in results}
    print()
    print(
        f"mcp tool call / chat call, CPU per request: "
        f"{cpu['gateway-mcp', 'json'] / cpu['gateway-chat', 'json']:.2f} (JSON), "
        f"{cpu['gateway-mcp', 'progress'] / cpu['gateway-chat', 'stream']:.2f} (streamed)"
    )
    print(
        f"SDK server echo tool / gateway tool call (whole pipeline), CPU per request: "
        f"{cpu['sdk-server', 'json'] / cpu['gateway-mcp', 'json']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.mcp_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    args.workers, args.chunk_delay_ms, args.baseline = 1, 0, None
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: install it (Debian: apt-get install -y wrk)")
    root = Path(tempfile.mkdtemp(prefix="agentlink-mcp-load-"))
    root.chmod(0o755)  # as root, postgres runs as `nobody` and must reach its data folder
    postgres = servers.PostgresServer(root / "postgres", free_port(), durable=False)
    valkey = servers.ValkeyServer(root / "valkey", free_port(), durable=False)
    started: list[subprocess.Popen[bytes]] = []
    try:
        database_url, redis_url = postgres.start(), valkey.start()
        assert valkey.process is not None
        targets, started = start_apps(args, root, database_url, redis_url, valkey.process.pid)
        [chat] = [target for target in targets if target.name == "gateway"]
        key = chat.headers["X-AgentLink-Key"]
        base, _, agent_path = chat.url.partition("/proxy/v1/agents/")
        tool = tool_name("test agent", agent_path.split("/")[0])
        mcp_url = f"{base}/mcp"
        headers = mcp_headers(key)
        headers["Mcp-Session-Id"] = open_session(mcp_url, headers)
        bodies = {
            "json": call_body(tool, progress=False),
            "progress": call_body(tool, progress=True),
        }
        mcp = Target("gateway-mcp", mcp_url, headers, bodies, chat.root_pid)
        chat = Target("gateway-chat", chat.url, chat.headers, chat.body, chat.root_pid)
        sdk_port = free_port()
        sdk_argv = uvicorn_argv("loadtests.sdk_mcp_server:create_app", sdk_port, 1)
        sdk_process = start(sdk_argv, root / "sdk.log", sdk_port, dict(os.environ))
        started.append(sdk_process)
        sdk_url = f"http://127.0.0.1:{sdk_port}/mcp"
        sdk = Target("sdk-server", sdk_url, mcp_headers(None),
                     {"json": call_body("echo", progress=False)}, sdk_process.pid)  # fmt: skip
        preflight(mcp)
        preflight(sdk)
        runs = [(chat, "json"), (mcp, "json"), (chat, "stream"), (mcp, "progress"), (sdk, "json")]
        for target, mode in runs:  # warm up
            wrk(target, mode, args.concurrency, 1, root)
        print(
            f"1 worker each; wrk -t1 -c{args.concurrency}; {args.duration} s per run; "
            f"load average before: {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results = [
            wrk(target, mode, args.concurrency, args.duration, root) for target, mode in runs
        ]
        report(results)
    except BaseException:
        print_log_tails(root, ("gateway.log", "mock.log", "floor.log", "sdk.log"))
        raise
    finally:
        for process in reversed(started):
            stop(process)
        valkey.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
