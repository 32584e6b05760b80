"""Helpers the gateway tests share: calling the gateway, reading Redis state, waiting boundedly.

Everything here talks to real servers; nothing is mocked. Waits are polls with a deadline, so a
test fails with a clear message instead of hanging, and never depends on a tight timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import orjson
import redis.asyncio as redis_asyncio

from common import keyspace
from common.sse import events_of
from devstack.servers import free_port
from tests.factories import (
    Agent,
    ApiKey,
    Developer,
    make_agent,
    make_developer,
    make_key,
    use_trials,
)
from tests.processes import serve_gateway

# A breaker that never opens (the failure ratio can never exceed 1): for gateways that inject
# many upstream failures on purpose and must not trip into refusing the calls that follow.
NO_BREAKER = {"BREAKER_FAILURE_RATIO": "2"}


def every_provider_at(provider_url: str) -> dict[str, str]:
    """Gateway settings that point the Anthropic and Gemini providers at the mock too (the
    OpenAI format is there already in `gateway_env`)."""
    return {
        "ANTHROPIC_API_KEY": "mock-key", "ANTHROPIC_BASE_URL": provider_url,
        "GOOGLE_AI_API_KEY": "mock-key", "GOOGLE_BASE_URL": provider_url,
    }  # fmt: skip


@contextlib.contextmanager
def gateway(env: dict[str, str], **overrides: str) -> Iterator[str]:
    """A gateway on loopback with `overrides` on top of `env`; yields its base URL.

    For module-scoped gateways (the `start_gateway` fixture is per test)."""
    with serve_gateway({**env, **overrides}) as url:
        yield url


@dataclass(frozen=True)
class Caller:
    """A developer with a key, and an agent to call."""

    developer: Developer
    key: ApiKey
    agent: Agent

    @property
    def shard(self) -> int:
        return self.developer.shard


async def make_caller(
    db: asyncpg.Pool,
    *,
    quota: int = 100,
    tier: str = "free",
    price: Decimal = Decimal("0.01"),
    status: str = "active",
    system_prompt: str = "You are a careful assistant. SECRET-PROMPT-MARKER.",
    trials_used: int = 0,
    **agent_options: Any,
) -> Caller:
    """A fresh developer, key and agent (`agent_options` go to `make_agent`). `trials_used`
    pre-spends the pair's free trials in Postgres (as earlier calls would have), so the next
    calls are charged to quota."""
    developer = await make_developer(db, quota=quota, tier=tier)
    key = await make_key(db, developer)
    agent = await make_agent(
        db, price=price, status=status, system_prompt=system_prompt, **agent_options
    )
    if trials_used:
        await use_trials(db, developer.user_id, agent.agent_id, trials_used)
    return Caller(developer, key, agent)


def agent_sdk(base_url: str, agent_id: str, api_key: str, **options: Any) -> openai.AsyncOpenAI:
    """The official OpenAI SDK pointed at one agent on the gateway, retrying nothing."""
    return openai.AsyncOpenAI(
        base_url=f"{base_url}/proxy/v1/agents/{agent_id}", api_key=api_key,
        **({"max_retries": 0} | options),
    )  # fmt: skip


def chat_url(base_url: str, agent_id: str) -> str:
    return f"{base_url}/proxy/v1/agents/{agent_id}/chat"


async def chat(
    client: httpx.AsyncClient,
    base_url: str,
    caller: Caller,
    content: str = "hello",
    *,
    stream: bool = False,
    agent_id: str | None = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One call; the whole response is read (a stream is read to its end)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return await client.post(
        chat_url(base_url, agent_id or caller.agent.agent_id),
        headers={"X-AgentLink-Key": key or caller.key.plaintext, **(headers or {})},
        json=body,
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code; returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert body["request_id"]
    assert response.headers["x-request-id"] == body["request_id"]
    return body


def sse_events(text: str) -> list[bytes]:
    """The `data:` payloads of an SSE body, in order."""
    return [event.data for event in events_of(text.encode())]


def in_band_error(text: str) -> dict[str, Any] | None:
    """The error event the gateway appends to a stream that broke after the 200, if any."""
    for event in sse_events(text):
        if event.startswith(b"{"):
            data = orjson.loads(event)
            if "error" in data and "request_id" in data:
                return dict(data)
    return None


async def quota_units(redis: redis_asyncio.Redis, caller: Caller) -> int | None:
    """The live quota balance in Redis (None until the gateway first loaded it)."""
    raw = await redis.get(keyspace.quota(caller.shard, caller.developer.user_id))
    return None if raw is None else int(raw)


async def trials_used(redis: redis_asyncio.Redis, caller: Caller) -> int:
    raw = await redis.hget(
        keyspace.trials(caller.shard, caller.developer.user_id), caller.agent.agent_id
    )
    return 0 if raw is None else int(raw)


async def usage_events(redis: redis_asyncio.Redis, caller: Caller) -> list[dict[str, str]]:
    """This developer's usage events (the stream is per shard, shared with other users)."""
    entries = await redis.xrange(keyspace.usage_stream(caller.shard))
    user_id = caller.developer.user_id.encode()
    return [
        {name.decode(): value.decode() for name, value in fields.items()}
        for _, fields in entries
        if fields.get(b"user_id") == user_id
    ]


async def wait_for_events(
    redis: redis_asyncio.Redis, caller: Caller, count: int, *, timeout_s: float = 10.0
) -> list[dict[str, str]]:
    """Wait until the developer has at least `count` usage events (a successful call is
    committed just after its response went out), then a moment more to catch any extra."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = await usage_events(redis, caller)
        if len(events) >= count:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} usage events, got {len(events)}: {events}")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    return await usage_events(redis, caller)


async def mock_requests_containing(client: httpx.AsyncClient, mock_url: str, marker: str) -> int:
    """How many requests the mock provider received with `marker` in their body."""
    response = await client.get(f"{mock_url}/_mock/requests")
    return sum(marker in orjson.dumps(entry["body"]).decode() for entry in response.json())


# -- a gateway in its own process ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def gateway_process(
    env: dict[str, str], log_path: Path, *uvicorn_args: str
) -> Iterator[GatewayProcess]:
    """A gateway as production runs it: its own uvicorn process (so it can be signalled or
    SIGKILLed), with `uvicorn_args` on top (e.g. `--workers 2`). Its own process group, so
    whatever is left of it (workers too) is killed at the end."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log", *uvicorn_args]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield GatewayProcess(f"http://127.0.0.1:{port}", process, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass(frozen=True)
class GatewayProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError("the gateway exited:\n" + self.log())
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the gateway did not start:\n" + self.log()
                await asyncio.sleep(0.1)
