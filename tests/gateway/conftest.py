"""Gateway fixtures beyond the session's: a gateway with every provider format at the mock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.helpers import every_provider_at, gateway


@pytest.fixture(scope="module")
def every_provider_gateway(gateway_env: dict[str, str], mock_provider_url: str) -> Iterator[str]:
    """A gateway whose OpenAI-format, Anthropic and Gemini providers are all the mock (one per
    test module, so one module's breaker or cache state never reaches another's)."""
    with gateway(gateway_env, **every_provider_at(mock_provider_url)) as url:
        yield url
