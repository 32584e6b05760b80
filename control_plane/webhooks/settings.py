"""Settings of developer webhooks (registration checks and the worker's delivery job)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from common.settings import Environ, env_bool, env_float, env_int


@dataclass(frozen=True, slots=True)
class WebhookSettings:
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

    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    timeout_s: float
    delivery_interval_s: float
    lease_s: float
    disable_after_failures: int
    allow_private_addresses: bool
    quota_low_units: int
    max_per_user: int
    # The worker signs with each endpoint's secret, sealed in Postgres with the platform key
    # ring: it reads the same two variables as the API (see Secrets). Not shown in repr.
    encryption_keys: str = field(default="", repr=False)
    encryption_active_key_id: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Environ | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        return cls(
            max_retries=min(env_int(env, "WEBHOOK_MAX_RETRIES", 3, minimum=0), 9),
            backoff_base_s=env_float(env, "WEBHOOK_BACKOFF_BASE_S", 10.0, minimum=0.0),
            backoff_max_s=env_float(env, "WEBHOOK_BACKOFF_MAX_S", 3600.0, minimum=0.0),
            timeout_s=env_float(env, "WEBHOOK_TIMEOUT_S", 10.0, minimum=0.1),
            delivery_interval_s=env_float(env, "WEBHOOK_DELIVERY_INTERVAL_S", 1.0, minimum=0.02),
            lease_s=env_float(env, "WEBHOOK_LEASE_S", 60.0, minimum=1.0),
            disable_after_failures=env_int(env, "WEBHOOK_DISABLE_AFTER_FAILURES", 5, minimum=1),
            allow_private_addresses=env_bool(env, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False),
            quota_low_units=env_int(env, "WEBHOOK_QUOTA_LOW_UNITS", 10, minimum=0),
            max_per_user=env_int(env, "WEBHOOK_MAX_PER_USER", 10, minimum=1),
            encryption_keys=env.get("AGENTLINK_ENCRYPTION_KEYS", ""),
            encryption_active_key_id=env.get("AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID", ""),
        )
