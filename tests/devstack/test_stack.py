"""`./dev up` end to end: the whole stack from nothing, the printed request works, Ctrl-C
stops everything, and a restart finds the same data and prints the same key."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from web3 import Web3

from control_plane.chain.artifact import payouts_artifact
from devstack.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("  print(reply.choices[0].message.content)"):
            return process, "".join(lines)
    process.kill()
    process.communicate()
    logs = "".join(
        f"--- {log.name}\n{log.read_text()[-2000:]}"
        for log in (data_dir_of(env) / "logs").glob("*")
    )
    raise AssertionError("stack did not come up:\n" + "".join(lines) + logs)


def data_dir_of(env: dict[str, str]) -> Path:
    return Path(env["AGENTLINK_DATA_DIR"])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)  # drains and closes stdout


def printed(pattern: str, banner: str) -> tuple[str, ...]:
    """The groups of what the banner prints in `pattern`'s place (it must print it)."""
    found = re.search(pattern, banner)
    assert found is not None, banner
    return found.groups()


def buy_quota_as_printed(banner: str, control: str) -> None:
    """The printed purchase: log in, check out with the fake Stripe, press "Pay" on its page,
    land back, and the quota is there."""
    (email,) = printed(r"\"email\": \"([^\"]+)\"", banner)
    (password,) = printed(r"\"password\": \"([^\"]+)\"", banner)
    login = httpx.post(f"{control}/api/v1/auth/login", json={"email": email, "password": password})
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    before = httpx.get(f"{control}/api/v1/developers/me", headers=auth).json()["quota"]
    for provider in ("stripe", "coinbase"):
        checkout = httpx.post(
            f"{control}/api/v1/payments/checkout",
            headers=auth,
            json={"package": "starter", "provider": provider},
        )
        assert checkout.status_code == 201, checkout.text
        url = checkout.json()["checkout_url"]
        assert 'id="pay"' in httpx.get(url).text
        landed = httpx.post(url, follow_redirects=True)
        assert landed.status_code == 200
        # Back at the dashboard's billing page (this client has no session: via the login).
        assert str(landed.url).startswith(f"{control}/login?next=%2Fbilling%2Fsuccess")
    after = httpx.get(f"{control}/api/v1/developers/me", headers=auth).json()
    assert after["quota"]["remaining"] == before["remaining"] + 2000
    assert after["rate_tier"] == "paid"


def check_demo_token_as_printed(banner: str, control: str, agent_id: str) -> None:
    """The printed token id is the demo agent's, minted on the local chain, and the ownership
    route proves it from the chain."""
    token_id, tx_hash = printed(
        r"Demo agent token id: (\d+) \(minted, tx (0x[0-9a-f]{64})\)", banner
    )
    assert int(token_id) == int(agent_id.replace("-", ""), 16)
    proof = httpx.get(f"{control}/api/v1/agents/{agent_id}/ownership").json()
    assert proof["verified"] is True
    assert (proof["token_id"], proof["tx_hash"]) == (token_id, tx_hash)
    assert proof["owner"] is not None


def check_payout_vault_as_printed(banner: str, chain_port: int) -> None:
    """The printed payout vault is deployed on the local chain and funded."""
    address, funds = printed(r"Payout vault: (0x[0-9a-fA-F]{40}) \(holds (\d+) ", banner)
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{chain_port}"))
    vault = w3.eth.contract(address=address, abi=payouts_artifact().abi)
    assert vault.functions.funds().call() == int(funds) * 10**6


PORT_NAMES = (
    "GATEWAY", "CONTROL", "MOCK", "FAKE_STRIPE", "FAKE_COINBASE", "PG", "REDIS", "WORKER_METRICS",
    "CHAIN",
)  # fmt: skip


def _stack_env(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    for real in ("OPENAI_API_KEY", "STRIPE_SECRET_KEY", "COINBASE_API_KEY", "WORKER_METRICS_PORT",
                 "CHAIN_RPC_URL"):  # fmt: skip
        env.pop(real, None)
    env["AGENTLINK_DATA_DIR"] = str(data_dir)
    for name, port in ports.items():
        env[f"AGENTLINK_{name}_PORT"] = str(port)
    return env


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port` (from /proc/net/tcp*)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                addresses.add(address)
    return addresses


# Two full starts (each a Postgres, a Valkey, a chain node, six processes) on a shared box.
@pytest.mark.timeout(300)
def test_dev_up_runs_the_stack_and_the_printed_request_works(data_dir: Path) -> None:
    ports = {name: free_port() for name in PORT_NAMES}
    env = _stack_env(data_dir, ports)

    process, banner = _start(env)
    try:
        # Every port from the AGENTLINK_* family, on loopback only (127.0.0.1 is 0100007F).
        assert {name: _listening_addresses(port) for name, port in ports.items()} == {
            name: {"0100007F"} for name in ports
        }
        gateway, control = (f"http://127.0.0.1:{ports[n]}" for n in ("GATEWAY", "CONTROL"))
        assert httpx.get(f"{gateway}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{control}/readyz").json()["status"] == "ready"
        landing = httpx.get(f"{control}/")
        assert landing.status_code == 200
        assert "Demo Haiku Writer" in landing.text  # the dashboard, with the demo agent
        assert f"http://127.0.0.1:{ports['GATEWAY']}" in landing.text
        (key,) = printed(r"Demo API key:\s+(ak_\w+)", banner)
        (agent_id,) = printed(r"Demo agent id:\s+([0-9a-f-]{36})", banner)
        # The printed curl, as a request.
        reply = httpx.post(
            f"{gateway}/proxy/v1/agents/{agent_id}/chat",
            headers={"X-AgentLink-Key": key},
            json={"messages": [{"role": "user", "content": "Write about the sea"}]},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
        buy_quota_as_printed(banner, control)
        check_demo_token_as_printed(banner, control, agent_id)
        check_payout_vault_as_printed(banner, ports["CHAIN"])
    finally:
        _stop(process)
    assert process.returncode == 0
    assert not any(_port_open(port) for port in ports.values())

    process, banner_again = _start(env)
    try:
        assert "migrations: up to date" in banner_again
        assert f"Demo API key:   {key}" in banner_again
        # A new local chain: the registry deployed again, the demo token minted again.
        check_demo_token_as_printed(banner_again, control, agent_id)
    finally:
        _stop(process)


def _up_that_fails(data_dir: Path, ports: dict[str, int]) -> subprocess.CompletedProcess[str]:
    """`devstack up` that must refuse to start: exit status 1, within a minute."""
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "up"],
        cwd=ROOT,
        env=_stack_env(data_dir, ports),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    return result


def test_a_port_in_use_is_reported_before_anything_starts(data_dir: Path) -> None:
    """A second `./dev up` while the first runs: a clear message, no banner, nothing started."""
    ports = {name: free_port() for name in PORT_NAMES}
    with socket.socket() as first_stack:
        first_stack.bind(("127.0.0.1", ports["WORKER_METRICS"]))
        first_stack.listen()
        result = _up_that_fails(data_dir, ports)
    assert "AgentLink is running" not in result.stdout
    message = result.stderr
    assert f"port {ports['WORKER_METRICS']} (AGENTLINK_WORKER_METRICS_PORT)" in message
    assert "already running?" in message
    assert list(data_dir.iterdir()) == []  # no server was started


def test_two_variables_on_one_port_are_reported(data_dir: Path) -> None:
    ports = {name: free_port() for name in PORT_NAMES}
    ports["MOCK"] = ports["GATEWAY"]
    result = _up_that_fails(data_dir, ports)
    assert "AGENTLINK_MOCK_PORT and AGENTLINK_GATEWAY_PORT are both" in result.stderr


def test_the_local_stack_drains_before_it_is_killed() -> None:
    """./dev up's gateway ends open streams, then uvicorn cancels, then the lifespan settles,
    all before Ctrl-C's stop gives up and kills: the order the images keep (gateway/drain.py)."""
    from devstack import stack
    from gateway.app import _SETTLE_DRAIN_S

    argv = stack._uvicorn("gateway.app:create_app", free_port())
    graceful_s = int(argv[argv.index("--timeout-graceful-shutdown") + 1])
    assert graceful_s > stack.LOCAL_DRAIN_S
    # The lifespan waits for the in-flight commits, then for the settler's retries.
    assert graceful_s + 2 * _SETTLE_DRAIN_S < stack.LOCAL_STOP_TIMEOUT_S
