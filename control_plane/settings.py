"""The control plane's settings, from environment variables: one type per process.

`ApiSettings` is what the HTTP API (`control_plane/app.py`) runs on, its secrets included;
`WorkerSettings` is what the worker (`control_plane/worker.py`) runs on, and it needs none of
the API's secrets. A domain's own settings are a frozen dataclass in its package, hooked in
here as one field of the process (or both processes) that reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

from common.settings import (
    Environ,
    OperationsSettings,
    SettingsError,
    StorageSettings,
    env_decimal,
    env_float,
    env_int,
    env_list,
    env_str,
)
from control_plane.dashboard.settings import DashboardSettings
from control_plane.earnings.settings import EarningsSettings
from control_plane.knowledge.settings import KnowledgeBaseSettings
from control_plane.payments.settings import PaymentSettings
from control_plane.webhooks.settings import WebhookSettings


@dataclass(frozen=True, slots=True)
class UsageIngestSettings:
    """How the worker drains the usage streams into `call_logs` (control_plane/usage_ingest/).

    | variable | default | meaning |
    |---|---|---|
    | `USAGE_READ_COUNT` | 100 | XREADGROUP COUNT, per stream (1024 streams in one call) |
    | `USAGE_READ_BLOCK_MS` | 1000 | XREADGROUP BLOCK (the worker's socket timeout exceeds it) |
    | `USAGE_BATCH_MAX` | 5000 | most events written to Postgres in one transaction |
    | `USAGE_CLAIM_INTERVAL_S` | 30 | how often XAUTOCLAIM sweeps every stream |
    | `USAGE_CLAIM_MIN_IDLE_S` | 60 | entries pending longer than this are taken over |
    | `USAGE_LAG_INTERVAL_S` | 10 | how often the stream lag gauges are sampled |
    | `USAGE_DEAD_LETTER_MAXLEN` | 100000 | approximate cap of the `usage:dead` stream |
    | `USAGE_CONSUMER_IDLE_DELETE_S` | 3600 | idle consumers with nothing pending are removed |
    """

    read_count: int
    read_block_ms: int
    batch_max: int
    claim_interval_s: float
    claim_min_idle_s: float
    lag_interval_s: float
    dead_letter_maxlen: int
    consumer_idle_delete_s: float

    @classmethod
    def from_env(cls, env: Environ | None = None) -> UsageIngestSettings:
        env = os.environ if env is None else env
        return cls(
            read_count=env_int(env, "USAGE_READ_COUNT", 100, minimum=1),
            read_block_ms=env_int(env, "USAGE_READ_BLOCK_MS", 1000, minimum=1),
            batch_max=env_int(env, "USAGE_BATCH_MAX", 5000, minimum=1),
            claim_interval_s=env_float(env, "USAGE_CLAIM_INTERVAL_S", 30.0, minimum=0.05),
            claim_min_idle_s=env_float(env, "USAGE_CLAIM_MIN_IDLE_S", 60.0, minimum=0.0),
            lag_interval_s=env_float(env, "USAGE_LAG_INTERVAL_S", 10.0, minimum=0.05),
            dead_letter_maxlen=env_int(env, "USAGE_DEAD_LETTER_MAXLEN", 100_000, minimum=100),
            consumer_idle_delete_s=env_float(
                env, "USAGE_CONSUMER_IDLE_DELETE_S", 3600.0, minimum=1.0
            ),
        )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The control plane's HTTP API: storage, request limits, tokens, keys and API rules."""

    storage: StorageSettings
    log_level: str
    max_body_bytes: int
    jwt_secret: str
    access_token_ttl_s: int
    refresh_token_ttl_s: int
    encryption_keys: str
    encryption_active_key_id: str
    free_quota: int
    unit_price: Decimal
    price_min: Decimal
    price_max: Decimal
    review_min_calls: int
    cors_origins: tuple[str, ...]
    login_account_limit: int
    login_ip_limit: int
    login_window_s: int
    payments: PaymentSettings
    dashboard: DashboardSettings
    knowledge: KnowledgeBaseSettings
    earnings: EarningsSettings
    webhooks: WebhookSettings
    operations: OperationsSettings

    @classmethod
    def from_env(cls, env: Environ | None = None, *, api: bool = True) -> ApiSettings:
        """`api` is accepted for callers of the former `ControlPlaneSettings.from_env(env,
        api=True)`; it changes nothing."""
        env = os.environ if env is None else env
        jwt_secret = env_str(env, "JWT_SECRET")
        if len(jwt_secret) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 characters")
        price_min = env_decimal(env, "AGENT_PRICE_MIN_USD", "0.001")
        price_max = env_decimal(env, "AGENT_PRICE_MAX_USD", "100")
        if not Decimal(0) < price_min <= price_max:
            raise SettingsError("AGENT_PRICE_MIN_USD must be > 0 and <= AGENT_PRICE_MAX_USD")
        return cls(
            storage=StorageSettings.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            max_body_bytes=env_int(env, "CONTROL_MAX_BODY_BYTES", 10_485_760, minimum=1024),
            jwt_secret=jwt_secret,
            access_token_ttl_s=env_int(env, "JWT_ACCESS_TTL_S", 900, minimum=1),
            refresh_token_ttl_s=env_int(env, "JWT_REFRESH_TTL_S", 7 * 24 * 3600, minimum=60),
            encryption_keys=env_str(env, "AGENTLINK_ENCRYPTION_KEYS"),
            encryption_active_key_id=env_str(env, "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID"),
            free_quota=env_int(env, "FREE_QUOTA_UNITS", 100, minimum=0),
            unit_price=env_decimal(env, "UNIT_PRICE_USD", "0.01"),
            price_min=price_min,
            price_max=price_max,
            review_min_calls=env_int(env, "REVIEW_MIN_CALLS", 10, minimum=0),
            cors_origins=env_list(
                env, "CORS_ALLOW_ORIGINS", ("https://agentlink.io", "https://app.agentlink.io")
            ),
            login_account_limit=env_int(env, "LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1),
            login_ip_limit=env_int(env, "LOGIN_FAILURES_PER_IP", 50, minimum=1),
            login_window_s=env_int(env, "LOGIN_FAILURE_WINDOW_S", 900, minimum=1),
            payments=PaymentSettings.from_env(env),
            dashboard=DashboardSettings.from_env(env),
            knowledge=KnowledgeBaseSettings.from_env(env),
            earnings=EarningsSettings.from_env(env),
            webhooks=WebhookSettings.from_env(env),
            operations=OperationsSettings.from_env(env),
        )

    @property
    def api(self) -> ApiSettings:
        """Deprecated: the API's settings were once a part of a shared object; now they are it."""
        return self


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The worker: storage, its periodic jobs and usage ingestion."""

    storage: StorageSettings
    log_level: str
    partition_months_ahead: int
    worker_maintenance_interval_s: int
    # The reservation reaper (control_plane/reaper.py).
    reaper_interval_s: float
    reaper_per_call_limit: int
    # The worker's Prometheus endpoint; 0 serves none.
    worker_metrics_port: int
    worker_metrics_host: str
    usage: UsageIngestSettings
    payments: PaymentSettings
    dashboard: DashboardSettings
    knowledge: KnowledgeBaseSettings
    earnings: EarningsSettings
    webhooks: WebhookSettings

    @classmethod
    def from_env(cls, env: Environ | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        metrics_port = env_int(env, "WORKER_METRICS_PORT", 9102, minimum=0)
        if metrics_port > 65535:
            raise SettingsError("WORKER_METRICS_PORT must be a TCP port (0 disables it)")
        return cls(
            storage=StorageSettings.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            partition_months_ahead=env_int(env, "CALL_LOG_PARTITION_MONTHS_AHEAD", 2, minimum=1),
            worker_maintenance_interval_s=env_int(
                env, "WORKER_MAINTENANCE_INTERVAL_S", 3600, minimum=1
            ),
            reaper_interval_s=env_float(env, "WORKER_REAPER_INTERVAL_S", 2.0, minimum=0.05),
            reaper_per_call_limit=env_int(env, "WORKER_REAPER_PER_CALL_LIMIT", 500, minimum=1),
            worker_metrics_port=metrics_port,
            # In a pod Prometheus scrapes it from outside; the local stack binds loopback.
            worker_metrics_host=env_str(env, "WORKER_METRICS_HOST", "0.0.0.0"),  # noqa: S104
            usage=UsageIngestSettings.from_env(env),
            payments=PaymentSettings.from_env(env),
            dashboard=DashboardSettings.from_env(env),
            knowledge=KnowledgeBaseSettings.from_env(env),
            earnings=EarningsSettings.from_env(env),
            webhooks=WebhookSettings.from_env(env),
        )


# Deprecated name of the HTTP API's settings (before the worker had its own type).
ControlPlaneSettings = ApiSettings
