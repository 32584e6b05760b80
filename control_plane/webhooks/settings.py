"""Settings of developer webhooks (registration checks and the worker's delivery job)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.settings import Environ, EnvSettings, env, env_int

_MOST_RETRIES = 9  # a larger WEBHOOK_MAX_RETRIES is taken as this


@dataclass(frozen=True, slots=True)
class WebhookSettings(EnvSettings):
    """
    | variable | default | meaning |
    |---|---|---|
    | `WEBHOOK_MAX_RETRIES` | 3 | retries after a failed first attempt; then the delivery fails |
    | `WEBHOOK_BACKOFF_BASE_S` | 10 | first retry delay; doubles per retry, with ±25% jitter |
    | `WEBHOOK_BACKOFF_MAX_S` | 3600 | longest retry delay |
    | `WEBHOOK_TIMEOUT_S` | 10 | one attempt, connect to last byte |
    | `WEBHOOK_DELIVERY_INTERVAL_S` | 1 | how often the worker looks for due deliveries |
    | `WEBHOOK_LEASE_S` | 60 | a delivery in flight longer than this is retried elsewhere |
    | `WEBHOOK_DISABLE_AFTER_FAILURES` | 5 | failed deliveries in a row that disable an endpoint |
    | `WEBHOOK_ALLOW_PRIVATE_ADDRESSES` | false | allow private/loopback targets (tests, dev) |
    | `WEBHOOK_QUOTA_LOW_UNITS` | 10 | default `quota.low` threshold of a new endpoint |
    | `WEBHOOK_MAX_PER_USER` | 10 | endpoints one account may register |
    """

    max_retries: int = env("WEBHOOK_MAX_RETRIES", 3, minimum=0)
    backoff_base_s: float = env("WEBHOOK_BACKOFF_BASE_S", 10.0, minimum=0.0)
    backoff_max_s: float = env("WEBHOOK_BACKOFF_MAX_S", 3600.0, minimum=0.0)
    timeout_s: float = env("WEBHOOK_TIMEOUT_S", 10.0, minimum=0.1)
    delivery_interval_s: float = env("WEBHOOK_DELIVERY_INTERVAL_S", 1.0, minimum=0.02)
    lease_s: float = env("WEBHOOK_LEASE_S", 60.0, minimum=1.0)
    disable_after_failures: int = env("WEBHOOK_DISABLE_AFTER_FAILURES", 5, minimum=1)
    allow_private_addresses: bool = env("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
    quota_low_units: int = env("WEBHOOK_QUOTA_LOW_UNITS", 10, minimum=0)
    max_per_user: int = env("WEBHOOK_MAX_PER_USER", 10, minimum=1)
    # The worker signs with each endpoint's secret, sealed in Postgres with the platform key
    # ring: it reads the same two variables as the API (see Secrets). Not shown in repr.
    encryption_keys: str = env("AGENTLINK_ENCRYPTION_KEYS", "", secret=True)
    encryption_active_key_id: str = env("AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID", "", secret=True)

    @classmethod
    def derived(cls, env: Environ) -> dict[str, Any]:
        retries = env_int(env, "WEBHOOK_MAX_RETRIES", 3, minimum=0)
        return {"max_retries": min(retries, _MOST_RETRIES)}
