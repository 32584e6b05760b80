"""`./dev up`: the whole stack on one machine, from nothing but this checkout.

PostgreSQL and Valkey (unless DATABASE_URL / REDIS_URL point elsewhere), migrations, the demo
data, a local EVM node with the registry deployed (unless CHAIN_RPC_URL is set), then the mock
provider (unless OPENAI_API_KEY is set), the control plane, the gateway and the worker as child
processes. Ctrl-C stops everything it started; data stays under ./.data/.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from common.migrations import migrate_url
from crypto.envelope import KeyRing, generate_key
from devstack.chain_node import LocalChainNode
from devstack.demo import Demo, ensure_demo
from devstack.envfile import read_env_file, write_env_file
from devstack.local_chain import LOCAL_VAULT_FUNDING_USD, demo_token_line, start_local_chain
from devstack.servers import PostgresServer, ServerError, ValkeyServer, spawn, stop_process


@dataclass
class StackConfig:
    data_dir: Path
    gateway_port: int
    control_port: int
    mock_port: int
    fake_stripe_port: int
    fake_coinbase_port: int
    postgres_port: int
    redis_port: int
    worker_metrics_port: int
    chain_port: int
    gateway_workers: int

    @classmethod
    def from_env(cls, root: Path) -> StackConfig:
        env = os.environ
        return cls(
            data_dir=Path(env.get("AGENTLINK_DATA_DIR", root / ".data")).resolve(),
            gateway_port=int(env.get("AGENTLINK_GATEWAY_PORT", "8080")),
            control_port=int(env.get("AGENTLINK_CONTROL_PORT", "8081")),
            mock_port=int(env.get("AGENTLINK_MOCK_PORT", "9100")),
            fake_stripe_port=int(env.get("AGENTLINK_FAKE_STRIPE_PORT", "9200")),
            fake_coinbase_port=int(env.get("AGENTLINK_FAKE_COINBASE_PORT", "9201")),
            postgres_port=int(env.get("AGENTLINK_PG_PORT", "54329")),
            redis_port=int(env.get("AGENTLINK_REDIS_PORT", "63799")),
            worker_metrics_port=int(env.get("AGENTLINK_WORKER_METRICS_PORT", "9102")),
            chain_port=int(env.get("AGENTLINK_CHAIN_PORT", "8545")),
            gateway_workers=int(env.get("AGENTLINK_GATEWAY_WORKERS", "1")),
        )


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    config: StackConfig
    servers: list[PostgresServer | ValkeyServer | LocalChainNode] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    # (database URL, demo agent id) when the stack runs its own chain: the banner waits for
    # the worker's first mint and prints the token.
    chain_demo: tuple[str, str] | None = None
    # The local payout vault and its stablecoin, for the banner.
    payout_vault: tuple[str, str] | None = None

    def stop(self) -> None:
        for child in reversed(self.children):
            stop_process(child.process, signal.SIGTERM, timeout=LOCAL_STOP_TIMEOUT_S)
        self.children.clear()
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


def _local_secrets(path: Path) -> dict[str, str]:
    """Keys generated on first start and reused after, so encrypted rows stay readable."""
    stored = read_env_file(path)
    changed = False
    if "AGENTLINK_ENCRYPTION_KEYS" not in stored:
        stored["AGENTLINK_ENCRYPTION_KEYS"] = f"local1:{generate_key()}"
        stored["AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID"] = "local1"
        changed = True
    if "JWT_SECRET" not in stored:
        stored["JWT_SECRET"] = generate_key()
        changed = True
    if changed:
        write_env_file(path, stored)
    return stored


def _wait_http(url: str, child: Child, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise ServerError(
                f"{child.name} exited with {child.process.returncode}; see {child.log}"
            )
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServerError(f"{child.name} did not answer {url} within {timeout}s; see {child.log}")


def _start_child(stack: Stack, name: str, argv: list[str], env: dict[str, str]) -> Child:
    logs = stack.config.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    process = spawn(argv, log, run_as=None, death_signal=signal.SIGTERM, env=env)
    child = Child(name, process, log)
    stack.children.append(child)
    return child


# The local stack drains like the images do, only faster: a stream still open after
# LOCAL_DRAIN_S ends with its in-band 50303, uvicorn cancels what is left after
# LOCAL_GRACEFUL_SHUTDOWN_S, and stop_process waits longer than both plus the lifespan's commit
# wait before it kills (gateway/drain.py explains the order).
LOCAL_DRAIN_S = 5
LOCAL_GRACEFUL_SHUTDOWN_S = 10
LOCAL_STOP_TIMEOUT_S = 25.0


def _uvicorn(factory: str, port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
            "--timeout-graceful-shutdown", str(LOCAL_GRACEFUL_SHUTDOWN_S),
            # Header limits, read timeouts, envelope errors (common/http_server.py) and a
            # connection cap per worker; X-Forwarded-For is the control plane's to read, from
            # TRUSTED_PROXIES only.
            "--http", "common.http_server:GuardedHttpProtocol", "--limit-concurrency", "1000",
            "--no-proxy-headers", "--no-access-log", "--log-level", "warning"]  # fmt: skip


def local_ports(config: StackConfig, env: dict[str, str]) -> list[tuple[str, int]]:
    """The loopback ports this stack will listen on, each with the variable that sets it."""
    ports = [
        ("AGENTLINK_GATEWAY_PORT", config.gateway_port),
        ("AGENTLINK_CONTROL_PORT", config.control_port),
        ("AGENTLINK_WORKER_METRICS_PORT", config.worker_metrics_port),
    ]
    # A local server runs only where its outside service is not configured.
    ports += [(variable, port) for outside, variable, port in (
        ("DATABASE_URL", "AGENTLINK_PG_PORT", config.postgres_port),
        ("REDIS_URL", "AGENTLINK_REDIS_PORT", config.redis_port),
        ("OPENAI_API_KEY", "AGENTLINK_MOCK_PORT", config.mock_port),
        ("STRIPE_SECRET_KEY", "AGENTLINK_FAKE_STRIPE_PORT", config.fake_stripe_port),
        ("COINBASE_API_KEY", "AGENTLINK_FAKE_COINBASE_PORT", config.fake_coinbase_port),
        ("CHAIN_RPC_URL", "AGENTLINK_CHAIN_PORT", config.chain_port),
    ) if not env.get(outside)]  # fmt: skip
    return ports


def check_ports_free(ports: list[tuple[str, int]]) -> None:
    """Fail before starting anything when a port is taken (typically: a stack already runs)."""
    seen: dict[int, str] = {}
    for variable, port in ports:
        if port in seen:
            raise ServerError(f"{variable} and {seen[port]} are both {port}; give each its own")
        seen[port] = variable
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers do: a socket in TIME_WAIT does not make the port busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                raise ServerError(
                    f"port {port} ({variable}) is already in use on 127.0.0.1 "
                    f"({error.strerror}): is AgentLink already running? Stop it, or give a "
                    "second stack its own ports (every AGENTLINK_*_PORT) and AGENTLINK_DATA_DIR"
                ) from None


def start_stack(stack: Stack) -> Demo:
    config = stack.config
    check_ports_free(local_ports(config, dict(os.environ)))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.data_dir.chmod(0o755)  # as root, postgres runs as `nobody` below this folder
    env = dict(os.environ)
    env.update(_local_secrets(config.data_dir / "local-secrets.env"))

    if not env.get("DATABASE_URL"):
        postgres = PostgresServer(config.data_dir / "postgres", config.postgres_port, durable=True)
        stack.servers.append(postgres)
        env["DATABASE_URL"] = postgres.start()
    if not env.get("REDIS_URL"):
        valkey = ValkeyServer(config.data_dir / "valkey", config.redis_port, durable=True)
        stack.servers.append(valkey)
        env["REDIS_URL"] = valkey.start()
    applied = asyncio.run(migrate_url(env["DATABASE_URL"]))
    print(f"migrations: {', '.join(applied) if applied else 'up to date'}")

    keyring = KeyRing.from_env(
        env["AGENTLINK_ENCRYPTION_KEYS"], env["AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID"]
    )
    demo = asyncio.run(
        ensure_demo(env["DATABASE_URL"], keyring, config.data_dir / "local-secrets.env")
    )

    if not env.get("OPENAI_API_KEY"):
        # --prompt-cache: the demo agent's repeated calls show their cached prompt tokens.
        mock_argv = [sys.executable, "-m", "mock_provider", "--host", "127.0.0.1",
                     "--port", str(config.mock_port), "--prompt-cache"]  # fmt: skip
        mock = _start_child(stack, "mock-provider", mock_argv, env)
        _wait_http(f"http://127.0.0.1:{config.mock_port}/health", mock)
        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{config.mock_port}/v1"
        env["OPENAI_API_KEY"] = "mock-provider-key"
        env.setdefault("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{config.mock_port}")
        env.setdefault("ANTHROPIC_API_KEY", "mock-provider-key")
        env.setdefault("GOOGLE_BASE_URL", f"http://127.0.0.1:{config.mock_port}")
        env.setdefault("GOOGLE_AI_API_KEY", "mock-provider-key")

    _start_local_chain(stack, env, demo)

    fakes = _start_payment_fakes(stack, env)
    if "coinbase" in fakes:
        asyncio.run(_enable_crypto_payments(env["DATABASE_URL"]))

    # The dashboard's code snippets and playground use this gateway.
    env.setdefault("DASHBOARD_GATEWAY_PUBLIC_URL", f"http://127.0.0.1:{config.gateway_port}")
    control = _start_child(
        stack, "control-plane", _uvicorn("control_plane.app:create_app", config.control_port), env
    )
    gateway_env = {"SHUTDOWN_DRAIN_S": str(LOCAL_DRAIN_S)} | env
    if config.gateway_workers > 1:
        metrics_dir = config.data_dir / "prometheus"
        metrics_dir.mkdir(exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
        gateway_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    gateway = _start_child(
        stack,
        "gateway",
        _uvicorn("gateway.app:create_app", config.gateway_port, config.gateway_workers),
        gateway_env,
    )
    worker_env = env | {
        "WORKER_METRICS_HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": str(config.worker_metrics_port),
    }
    worker_argv = [sys.executable, "-m", "control_plane.worker"]
    worker = _start_child(stack, "worker", worker_argv, worker_env)
    _wait_http(f"http://127.0.0.1:{config.control_port}/healthz", control)
    _wait_http(f"http://127.0.0.1:{config.gateway_port}/healthz", gateway)
    _wait_http(f"http://127.0.0.1:{config.worker_metrics_port}/metrics", worker)
    return demo


def _start_local_chain(stack: Stack, env: dict[str, str], demo: Demo) -> None:
    """A local EVM node with the registry deployed, unless CHAIN_RPC_URL names a chain."""
    if env.get("CHAIN_RPC_URL"):
        return
    config = stack.config
    (config.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    local = start_local_chain(
        port=config.chain_port,
        log=config.data_dir / "logs" / "chain-node.log",
        secrets_file=config.data_dir / "local-secrets.env",
        database_url=env["DATABASE_URL"],
        control_url=f"http://127.0.0.1:{config.control_port}",
        demo_agent=demo.agent_id,
    )
    stack.servers.append(local.node)
    env.update(local.env)
    # The local vault is funded: offer on-chain payouts beside the ledger (still the default).
    env.setdefault("PAYOUT_PROVIDERS", "ledger,onchain")
    stack.chain_demo = (env["DATABASE_URL"], demo.agent_id)
    stack.payout_vault = (local.env["CHAIN_PAYOUTS_ADDRESS"], local.stablecoin)


def _start_payment_fakes(stack: Stack, env: dict[str, str]) -> list[str]:
    """Fake Stripe / Coinbase (fake_payments) for each provider without real keys, with the
    control plane pointed at them and they at its webhooks. Returns the ones started."""
    config = stack.config
    control = f"http://127.0.0.1:{config.control_port}"
    started = []
    fakes = [
        ("stripe", config.fake_stripe_port, "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
         "STRIPE_API_BASE", "sk_test_local_fake", "whsec_"),
        ("coinbase", config.fake_coinbase_port, "COINBASE_API_KEY", "COINBASE_WEBHOOK_SECRET",
         "COINBASE_API_BASE", "local-fake-coinbase-key", "cbsec_"),
    ]  # fmt: skip
    for provider, port, key_var, secret_var, base_var, fake_key, prefix in fakes:
        if env.get(key_var):
            continue  # real keys: the real provider
        secret = prefix + secrets.token_urlsafe(24)
        base = f"http://127.0.0.1:{port}"
        hook = f"{control}/api/v1/payments/webhook/{provider}"
        argv = [sys.executable, "-m", "fake_payments", provider, "--host", "127.0.0.1",
                "--port", str(port), "--webhook-url", hook, "--webhook-secret", secret]  # fmt: skip
        child = _start_child(stack, f"fake-{provider}", argv, env)
        _wait_http(f"{base}/health", child)
        env.update({key_var: fake_key, secret_var: secret, base_var: base})
        started.append(provider)
    if started:  # back to the dashboard's billing page after paying
        success = f"{control}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"
        env.setdefault("PAYMENT_SUCCESS_URL", success)
        env.setdefault("PAYMENT_CANCEL_URL", f"{control}/billing/cancel")
    return started


async def _enable_crypto_payments(database_url: str) -> None:
    """The seed ships crypto payments off; against the local fake they may as well be on."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "UPDATE feature_flags SET enabled = true WHERE key = 'enable_crypto_payments'"
        )
    finally:
        await connection.close()


def banner(config: StackConfig, demo: Demo, chain_line: str | None = None) -> str:
    gateway = f"http://127.0.0.1:{config.gateway_port}"
    control = f"http://127.0.0.1:{config.control_port}"
    base_url = f"{gateway}/proxy/v1/agents/{demo.agent_id}"
    return f"""
AgentLink is running.  (Ctrl-C stops everything; data stays in {config.data_dir})

  gateway        {gateway}      health: curl -s {gateway}/healthz
  control plane  {control}      health: curl -s {control}/healthz
  worker         metrics: curl -s http://127.0.0.1:{config.worker_metrics_port}/metrics
  dashboard      {control}/     (creator studio, developer console, playground, admin)
  logs           {config.data_dir}/logs/

Demo accounts (password: {demo.password}): {demo.creator_email}, {demo.developer_email},
  {demo.admin_email} (super admin)
Demo agent id:  {demo.agent_id}
{chain_line or "Demo agent token: on the chain at CHAIN_RPC_URL once the worker mints it"}
  ownership: curl -s {control}/api/v1/agents/{demo.agent_id}/ownership
Demo API key:   {demo.api_key}

Buy quota as the demo developer (fake Stripe on :{config.fake_stripe_port}, fake Coinbase on
:{config.fake_coinbase_port} unless real keys are set; see README "Payments"): log in at
{control}/login and open Billing, or over the API:

  TOKEN=$(curl -s {control}/api/v1/auth/login -H 'Content-Type: application/json' \\
    -d '{{"email": "{demo.developer_email}", "password": "{demo.password}"}}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {control}/api/v1/payments/checkout -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' -d '{{"package": "starter", "provider": "stripe"}}'
  # open its checkout_url and press Pay; then see the quota:
  curl -s {control}/api/v1/developers/me -H "Authorization: Bearer $TOKEN"

Call the demo agent:

  curl -s {base_url}/chat \\
    -H 'X-AgentLink-Key: {demo.api_key}' -H 'Content-Type: application/json' \\
    -d '{{"messages": [{{"role": "user", "content": "Write about the sea"}}]}}'

With the OpenAI SDK:

  from openai import OpenAI
  client = OpenAI(base_url="{base_url}", api_key="{demo.api_key}")
  reply = client.chat.completions.create(
      model="agent", messages=[{{"role": "user", "content": "Write about the sea"}}])
  print(reply.choices[0].message.content)
"""


def run(root: Path) -> int:
    stack = Stack(StackConfig.from_env(root))
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        demo = start_stack(stack)
        chain_line = None if stack.chain_demo is None else demo_token_line(*stack.chain_demo)
        if chain_line is not None and stack.payout_vault is not None:
            vault, coin = stack.payout_vault
            chain_line += (
                f"\nPayout vault: {vault} (holds {LOCAL_VAULT_FUNDING_USD} of the local"
                f' stablecoin {coin};\n  withdraw with {{"method": "onchain"}})'
            )
        print(banner(stack.config, demo, chain_line), flush=True)
        while not stopping:
            for child in stack.children:
                if child.process.poll() is not None:
                    print(f"{child.name} exited with {child.process.returncode}; see {child.log}")
                    print(child.log.read_text(errors="replace")[-2000:], file=sys.stderr)
                    return 1
            time.sleep(0.2)
        return 0
    except ServerError as error:
        print(f"dev up: {error}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        stack.stop()
