"""The gateway's settings, all from environment variables (see README and .env.example)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from common.knowledge.settings import RetrievalSettings
from common.settings import (
    Environ,
    EnvSettings,
    OperationsSettings,
    StorageSettings,
    env,
    env_str,
    free_trial_calls,
)


@dataclass(frozen=True, slots=True)
class ProviderEndpoint:
    name: str
    base_url: str
    api_key: str


@dataclass(frozen=True, slots=True)
class GatewaySettings(EnvSettings):
    storage: StorageSettings
    knowledge: RetrievalSettings
    providers: tuple[ProviderEndpoint, ...]
    operations: OperationsSettings
    log_level: str = env("LOG_LEVEL", "INFO")
    access_log: bool = env("GATEWAY_ACCESS_LOG", True)
    max_body_bytes: int = env("GATEWAY_MAX_BODY_BYTES", 1_048_576, minimum=1024)
    encryption_keys: str = env("AGENTLINK_ENCRYPTION_KEYS", secret=True)
    encryption_active_key_id: str = env("AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID")
    unit_price: Decimal = env("UNIT_PRICE_USD", Decimal("0.01"))  # noqa: RUF009 - env() declares the field
    rate_limit_free: int = env("RATE_LIMIT_FREE_PER_MIN", 10, minimum=1)
    rate_limit_paid: int = env("RATE_LIMIT_PAID_PER_MIN", 1000, minimum=1)
    rate_window_s: int = env("RATE_LIMIT_WINDOW_S", 60, minimum=1)
    trial_calls: int = free_trial_calls()
    # Minimum 1 s so a test can watch the reaper give back a dead gateway's reservation
    # without waiting a minute; production keeps the default (900 s), which must exceed the
    # longest call (a call outliving it goes unbilled: the reaper gave the reservation back
    # and the late commit finds nothing to settle).
    reservation_s: int = env("RESERVATION_TTL_S", 900, minimum=1)
    upstream_timeout_s: float = env("UPSTREAM_TIMEOUT_S", 30.0, minimum=0.01)
    stream_first_byte_timeout_s: float = env("STREAM_FIRST_BYTE_TIMEOUT_S", 30.0, minimum=0.01)
    stream_idle_timeout_s: float = env("STREAM_IDLE_TIMEOUT_S", 30.0, minimum=0.01)
    connect_timeout_s: float = env("UPSTREAM_CONNECT_TIMEOUT_S", 5.0, minimum=0.01)
    breaker_failure_ratio: float = env("BREAKER_FAILURE_RATIO", 0.5, minimum=0.01)
    breaker_interval_s: float = env("BREAKER_INTERVAL_S", 10.0, minimum=0.1)
    breaker_open_s: float = env("BREAKER_OPEN_S", 30.0, minimum=0.01)
    breaker_half_open_calls: int = env("BREAKER_HALF_OPEN_CALLS", 5, minimum=1)
    # After SIGTERM, how long open streams may run on before they are cut (gateway/drain.py).
    # Below uvicorn's --timeout-graceful-shutdown (45 s in the image), so the gateway ends
    # them itself, with an in-band error and settled, before uvicorn would cancel them.
    shutdown_drain_s: float = env("SHUTDOWN_DRAIN_S", 20.0, minimum=0.0)

    @classmethod
    def derived(cls, env: Environ) -> dict[str, Any]:
        return {"providers": _providers(env)}


def _providers(env: Environ) -> tuple[ProviderEndpoint, ...]:
    """Configured providers; one without an API key is left out (calls to it answer 503)."""
    known = (
        ("openai", "OPENAI_BASE_URL", "https://api.openai.com/v1", "OPENAI_API_KEY"),
        ("anthropic", "ANTHROPIC_BASE_URL", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
        ("google", "GOOGLE_BASE_URL", "https://generativelanguage.googleapis.com",
         "GOOGLE_AI_API_KEY"),
    )  # fmt: skip
    return tuple(
        ProviderEndpoint(name, env_str(env, url_var, default), env[key_var])
        for name, url_var, default, key_var in known
        if env.get(key_var)
    )
