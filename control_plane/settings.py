"""The control plane's settings, from environment variables: one type per process.

`ApiSettings` is what the HTTP API (`control_plane/app.py`) runs on, its secrets included;
`WorkerSettings` is what the worker (`control_plane/worker.py`) runs on, and it needs none of
the API's secrets. A domain's own settings are a frozen dataclass in its package, hooked in
here as one field of the process (or both processes) that reads it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from decimal import Decimal

from common.settings import (
    EnvSettings,
    OperationsSettings,
    SettingsError,
    StorageSettings,
    env,
)
from control_plane.chain.settings import ChainSettings
from control_plane.dashboard.settings import DashboardSettings
from control_plane.earnings.settings import EarningsSettings
from control_plane.knowledge.settings import KnowledgeBaseSettings
from control_plane.payments.settings import PaymentSettings
from control_plane.webhooks.settings import WebhookSettings


@dataclass(frozen=True, slots=True)
class UsageIngestSettings(EnvSettings):
    """How the worker drains the usage streams into `call_logs` (control_plane/usage_ingest/).

    | variable | default | meaning |
    |---|---|---|
    | `USAGE_READ_COUNT` | 100 | XREADGROUP COUNT, per stream (1024 streams in one call) |
    | `USAGE_READ_BLOCK_MS` | 1000 | XREADGROUP BLOCK (< socket timeout); on a cluster: idle poll |
    | `USAGE_BATCH_MAX` | 5000 | most events written to Postgres in one transaction |
    | `USAGE_CLAIM_INTERVAL_S` | 30 | how often XAUTOCLAIM sweeps every stream |
    | `USAGE_CLAIM_MIN_IDLE_S` | 60 | entries pending longer than this are taken over |
    | `USAGE_LAG_INTERVAL_S` | 10 | how often the stream lag gauges are sampled |
    | `USAGE_DEAD_LETTER_MAXLEN` | 100000 | approximate cap of the `usage:dead` stream |
    | `USAGE_CONSUMER_IDLE_DELETE_S` | 3600 | idle consumers with nothing pending are removed |
    """

    read_count: int = env("USAGE_READ_COUNT", 100, minimum=1)
    read_block_ms: int = env("USAGE_READ_BLOCK_MS", 1000, minimum=1)
    batch_max: int = env("USAGE_BATCH_MAX", 5000, minimum=1)
    claim_interval_s: float = env("USAGE_CLAIM_INTERVAL_S", 30.0, minimum=0.05)
    claim_min_idle_s: float = env("USAGE_CLAIM_MIN_IDLE_S", 60.0, minimum=0.0)
    lag_interval_s: float = env("USAGE_LAG_INTERVAL_S", 10.0, minimum=0.05)
    dead_letter_maxlen: int = env("USAGE_DEAD_LETTER_MAXLEN", 100_000, minimum=100)
    consumer_idle_delete_s: float = env("USAGE_CONSUMER_IDLE_DELETE_S", 3600.0, minimum=1.0)


def _jwt_secret(name: str, raw: str) -> str:
    if len(raw) < 32:
        raise SettingsError(f"{name} must be at least 32 characters")
    return raw


def _trusted_proxies(name: str, raw: str) -> tuple[str, ...]:
    """`TRUSTED_PROXIES`: addresses or CIDR ranges whose X-Forwarded-For is believed (the
    rightmost address not in them is the client). None by default: then the peer is the
    client, and no header can pose as another address (issue 9, item 9)."""
    proxies = tuple(item.strip() for item in raw.split(",") if item.strip())
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsError(f"{name}: {proxy!r} is no address or CIDR") from None
    return proxies


@dataclass(frozen=True, slots=True)
class _ProcessSettings(EnvSettings):
    """What the API and the worker both run on: storage and the domains' own settings."""

    storage: StorageSettings
    payments: PaymentSettings
    dashboard: DashboardSettings
    knowledge: KnowledgeBaseSettings
    earnings: EarningsSettings
    webhooks: WebhookSettings
    chain: ChainSettings

    def __post_init__(self) -> None:
        if "onchain" in self.earnings.payout_providers and not self.chain.payouts_enabled:
            raise SettingsError(
                "PAYOUT_PROVIDERS offers onchain: set CHAIN_RPC_URL and CHAIN_PAYOUTS_ADDRESS"
            )


@dataclass(frozen=True, slots=True)
class ApiSettings(_ProcessSettings):
    """The control plane's HTTP API: storage, request limits, tokens, keys and API rules."""

    operations: OperationsSettings
    log_level: str = env("LOG_LEVEL", "INFO")
    max_body_bytes: int = env("CONTROL_MAX_BODY_BYTES", 10_485_760, minimum=1024)
    jwt_secret: str = env("JWT_SECRET", parse=_jwt_secret, secret=True)
    access_token_ttl_s: int = env("JWT_ACCESS_TTL_S", 900, minimum=1)
    refresh_token_ttl_s: int = env("JWT_REFRESH_TTL_S", 7 * 24 * 3600, minimum=60)
    encryption_keys: str = env("AGENTLINK_ENCRYPTION_KEYS", secret=True)
    encryption_active_key_id: str = env("AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID")
    free_quota: int = env("FREE_QUOTA_UNITS", 100, minimum=0)
    unit_price: Decimal = env("UNIT_PRICE_USD", Decimal("0.01"))  # noqa: RUF009 - env() declares the field
    price_min: Decimal = env("AGENT_PRICE_MIN_USD", Decimal("0.001"))  # noqa: RUF009 - env() declares the field
    price_max: Decimal = env("AGENT_PRICE_MAX_USD", Decimal(100))  # noqa: RUF009 - env() declares the field
    review_min_calls: int = env("REVIEW_MIN_CALLS", 10, minimum=0)
    cors_origins: tuple[str, ...] = env(
        "CORS_ALLOW_ORIGINS", ("https://agentlink.io", "https://app.agentlink.io")
    )
    login_account_limit: int = env("LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1)
    login_ip_limit: int = env("LOGIN_FAILURES_PER_IP", 50, minimum=1)
    login_window_s: int = env("LOGIN_FAILURE_WINDOW_S", 900, minimum=1)
    login_account_ceiling: int = env("LOGIN_ACCOUNT_CEILING", 20, minimum=1)
    login_backoff_max_s: int = env("LOGIN_BACKOFF_MAX_S", 300, minimum=1)
    # Empty: X-Forwarded-* headers are never read.
    trusted_proxies: tuple[str, ...] = env("TRUSTED_PROXIES", (), parse=_trusted_proxies)

    def __post_init__(self) -> None:
        _ProcessSettings.__post_init__(self)
        if not Decimal(0) < self.price_min <= self.price_max:
            raise SettingsError("AGENT_PRICE_MIN_USD must be > 0 and <= AGENT_PRICE_MAX_USD")


@dataclass(frozen=True, slots=True)
class WorkerSettings(_ProcessSettings):
    """The worker: storage, its periodic jobs and usage ingestion."""

    usage: UsageIngestSettings
    log_level: str = env("LOG_LEVEL", "INFO")
    partition_months_ahead: int = env("CALL_LOG_PARTITION_MONTHS_AHEAD", 2, minimum=1)
    worker_maintenance_interval_s: int = env("WORKER_MAINTENANCE_INTERVAL_S", 3600, minimum=1)
    # The reservation reaper (control_plane/reaper.py).
    reaper_interval_s: float = env("WORKER_REAPER_INTERVAL_S", 2.0, minimum=0.05)
    reaper_per_call_limit: int = env("WORKER_REAPER_PER_CALL_LIMIT", 500, minimum=1)
    # Users' gateway records after changes made outside our code (control_plane/
    # user_record_sync.py): how long a plain-SQL role change leaves a stale record at most.
    user_record_sync_interval_s: float = env("USER_RECORD_SYNC_INTERVAL_S", 1.0, minimum=0.05)
    # The worker's Prometheus endpoint; 0 serves none.
    worker_metrics_port: int = env("WORKER_METRICS_PORT", 9102, minimum=0, maximum=65535)
    # In a pod Prometheus scrapes it from outside; the local stack binds loopback.
    worker_metrics_host: str = env("WORKER_METRICS_HOST", "0.0.0.0")  # noqa: S104
