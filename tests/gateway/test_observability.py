"""Metrics and logs: correct across worker processes, bounded labels, and never a key or a
prompt in either."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack.servers import free_port
from tests.factories import make_agent, make_developer, make_key

PROMPT = "OBSERVABILITY-SECRET-PROMPT do not leak"


@pytest.fixture
def two_worker_gateway(gateway_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    port = free_port()
    with (
        tempfile.TemporaryDirectory() as metrics_dir,
        tempfile.NamedTemporaryFile("w+", suffix=".log") as log,
    ):
        env = {**gateway_env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, "LOG_LEVEL": "INFO"}
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
             "--port", str(port), "--workers", "2", "--no-access-log"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield url, Path(log.name)
        finally:
            process.terminate()
            process.wait(timeout=30)


def _sample(metrics: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_add_up_across_workers_and_nothing_secret_is_exposed(
    two_worker_gateway: tuple[str, Path], db_pool: asyncpg.Pool
) -> None:
    url, log_file = two_worker_gateway
    developer = await make_developer(db_pool, tier="paid", quota=1000)
    key = await make_key(db_pool, developer)
    agent = await make_agent(db_pool, system_prompt=PROMPT)
    route = 'route="/proxy/v1/agents/{agent_id}/chat",status_class="2xx"'
    async with httpx.AsyncClient(base_url=url) as client:
        before = _sample((await client.get("/metrics")).text,
                         "agentlink_gateway_requests_total", route)  # fmt: skip
        calls = 30
        for index in range(calls):
            response = await client.post(
                f"/proxy/v1/agents/{agent.agent_id}/chat",
                headers={"X-AgentLink-Key": key.plaintext, "X-Request-ID": f"obs-{index}"},
                json={"messages": [{"role": "user", "content": f"call {index}"}]},
            )
            assert response.status_code == 200
        # Whichever worker answers the scrape, it reports both workers' counts. The counter
        # moves just after the response is sent, so allow the last call a moment to land.
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = (await client.get("/metrics")).text
            seen.append(_sample(metrics, "agentlink_gateway_requests_total", route) - before)
            if seen[-4:] == [calls] * 4:
                break
            await asyncio.sleep(0.05)
        assert seen[-4:] == [calls] * 4, seen
    assert "agentlink_gateway_in_flight_requests" in metrics
    assert "agentlink_gateway_request_duration_seconds_bucket" in metrics
    for secret in (key.plaintext, key.key_hash, developer.user_id, agent.agent_id, PROMPT):
        assert secret not in metrics

    logs = log_file.read_text()
    access = [line for line in logs.splitlines() if '"msg":"call"' in line]
    assert any('"request_id":"obs-7"' in line for line in access)
    assert key.plaintext not in logs
    assert PROMPT not in logs
