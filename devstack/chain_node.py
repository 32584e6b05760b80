"""A local EVM node: eth-tester's py-evm chain behind a standard JSON-RPC endpoint over HTTP.

    python -m devstack.chain_node --port 8545 --fund 0xADDRESS [--block-time 1]

Nothing to download: py-evm and eth-tester come from PyPI. The chain lives in memory (a new
node is a new chain, so `./dev up` deploys the registry on every start); each transaction is
mined into its own block at once, and an empty block is mined every `--block-time` seconds,
so confirmations deepen as on a real chain. `--fund` gives each address 1000 ether from the
tester's prefunded account: the signer pays its own gas, as it would anywhere else.

The wire format is what any node speaks: quantities and byte strings as 0x-hex, errors as
JSON-RPC error objects (a revert is code 3 with its reason, like geth). `GET /health` answers
200 for the stack's readiness checks. One lock serialises the chain: py-evm is not thread-safe.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from eth_tester.exceptions import TransactionFailed
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint

_FUNDING_WEI = 1000 * 10**18


def to_wire(value: Any) -> Any:
    """A web3-formatted result as JSON-RPC writes it: ints and bytes as 0x-hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(key): to_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    return str(value)


def _revert_reason(error: TransactionFailed) -> str:
    reason = error.args[0] if error.args else ""
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason)


class ChainNode:
    def __init__(self, fund: list[str]) -> None:
        self._w3 = Web3(EthereumTesterProvider())
        self._lock = threading.Lock()
        faucet = self._w3.eth.accounts[0]
        for address in fund:
            self._w3.manager.request_blocking(
                RPCEndpoint("eth_sendTransaction"),
                [{"from": faucet, "to": Web3.to_checksum_address(address),
                  "value": _FUNDING_WEI, "gas": 21000}],
            )  # fmt: skip

    def answer(self, request: Any) -> dict[str, Any]:
        """One JSON-RPC request object's response object."""
        request_id = request.get("id") if isinstance(request, dict) else None
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            reply["error"] = {"code": -32600, "message": "invalid request"}
            return reply
        params = request.get("params") or []
        try:
            with self._lock:
                result = self._w3.manager.request_blocking(RPCEndpoint(request["method"]), params)
            reply["result"] = to_wire(result)
        except TransactionFailed as error:
            reason = _revert_reason(error)
            if not reason.startswith("execution reverted"):
                reason = f"execution reverted: {reason}"
            reply["error"] = {"code": 3, "message": reason}
        except Exception as error:
            reply["error"] = {"code": -32000, "message": str(error) or type(error).__name__}
        return reply

    def mine(self) -> None:
        with self._lock:
            self._w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]


def _handler(node: ChainNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send(200 if self.path == "/health" else 404, {"status": "ok"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                error = {"code": -32700, "message": "parse error"}
                self._send(200, {"jsonrpc": "2.0", "id": None, "error": error})
                return
            if isinstance(body, list):
                self._send(200, [node.answer(item) for item in body])
            else:
                self._send(200, node.answer(body))

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the stack's logs are the services'

    return Handler


def serve(host: str, port: int, fund: list[str], block_time_s: float) -> None:
    node = ChainNode(fund)
    server = ThreadingHTTPServer((host, port), _handler(node))
    server.daemon_threads = True
    stop = threading.Event()

    def mine_periodically() -> None:
        while not stop.wait(block_time_s):
            node.mine()

    if block_time_s > 0:
        threading.Thread(target=mine_periodically, daemon=True).start()
    print(f"chain node on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        stop.set()
        server.server_close()


class LocalChainNode:
    """The node as a child process (the stack's and the chain tests'): `start` waits until it
    answers; `pause`/`resume` freeze it in place (a node that stops answering, state kept)."""

    def __init__(self, port: int, fund: list[str], log: Path, block_time_s: float = 1.0) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._argv = [sys.executable, "-m", "devstack.chain_node", "--port", str(port),
                      "--block-time", str(block_time_s)]  # fmt: skip
        for address in fund:
            self._argv += ["--fund", address]
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> str:
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(
                self._argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chain node exited with {self._process.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"chain node did not answer within {timeout_s}s; see {self._log}")

    def pause(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGCONT)
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.chain_node")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8545)
    parser.add_argument("--fund", action="append", default=[], help="an address to fund")
    parser.add_argument("--block-time", type=float, default=1.0, help="seconds; 0: never")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port, args.fund, args.block_time)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
