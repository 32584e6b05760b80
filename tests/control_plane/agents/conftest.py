"""A gateway and a mock provider beside the session's control plane, on the same Postgres,
Redis and encryption key, so agent tests can check what the gateway does after each API call.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from mock_provider import create_app as create_mock_provider
from tests.support import serve


@pytest.fixture(scope="session")
def agents_mock_url() -> Iterator[str]:
    with serve(create_mock_provider(), health_path="/health") as url:
        yield url


@pytest.fixture(scope="session")
def agents_gateway_url(control_env: dict[str, str], agents_mock_url: str) -> Iterator[str]:
    env = {
        "DATABASE_URL": control_env["DATABASE_URL"],
        "REDIS_URL": control_env["REDIS_URL"],
        # The control plane's key ring: the gateway opens the envelopes the API seals.
        "AGENTLINK_ENCRYPTION_KEYS": control_env["AGENTLINK_ENCRYPTION_KEYS"],
        "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID": control_env["AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID"],
        "OPENAI_BASE_URL": f"{agents_mock_url}/v1",
        "OPENAI_API_KEY": "mock-key",
        "UPSTREAM_TIMEOUT_S": "5",
        "LOG_LEVEL": "WARNING",
    }
    with serve(create_gateway(GatewaySettings.from_env(env))) as url:
        yield url
