"""The control plane's (and worker's) settings, all from environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

from common.settings import (
    Environ,
    SettingsError,
    StorageSettings,
    env_float,
    env_int,
    env_str,
)
from control_plane.api_settings import ApiSettings
from control_plane.dashboard.settings import DashboardSettings
from control_plane.knowledge.settings import KnowledgeBaseSettings
from control_plane.payments.settings import PaymentSettings


@dataclass(frozen=True, slots=True)
class UsageIngestSettings:
    """How the worker drains the usage streams into `call_logs` (control_plane/usage_ingest.py).

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
class ControlPlaneSettings:
    storage: StorageSettings
    log_level: str
    max_body_bytes: int
    partition_months_ahead: int
    worker_maintenance_interval_s: int
    # The reservation reaper (control_plane/reaper.py).
    reaper_interval_s: float
    reaper_per_call_limit: int
    # The worker's Prometheus endpoint; 0 serves none.
    worker_metrics_port: int
    usage: UsageIngestSettings
    payments: PaymentSettings
    dashboard: DashboardSettings
    knowledge: KnowledgeBaseSettings
    # Present for the HTTP app; None for the worker, which needs none of its secrets.
    api: ApiSettings | None

    @classmethod
    def from_env(cls, env: Environ | None = None, *, api: bool = False) -> ControlPlaneSettings:
        env = os.environ if env is None else env
        storage = StorageSettings.from_env(env)
        usage = UsageIngestSettings.from_env(env)
        metrics_port = env_int(env, "WORKER_METRICS_PORT", 9102, minimum=0)
        if metrics_port > 65535:
            raise SettingsError("WORKER_METRICS_PORT must be a TCP port (0 disables it)")
        return cls(
            storage=storage,
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            max_body_bytes=env_int(env, "CONTROL_MAX_BODY_BYTES", 10_485_760, minimum=1024),
            partition_months_ahead=env_int(env, "CALL_LOG_PARTITION_MONTHS_AHEAD", 2, minimum=1),
            worker_maintenance_interval_s=env_int(
                env, "WORKER_MAINTENANCE_INTERVAL_S", 3600, minimum=1
            ),
            reaper_interval_s=env_float(env, "WORKER_REAPER_INTERVAL_S", 2.0, minimum=0.05),
            reaper_per_call_limit=env_int(env, "WORKER_REAPER_PER_CALL_LIMIT", 500, minimum=1),
            worker_metrics_port=metrics_port,
            usage=usage,
            payments=PaymentSettings.from_env(env),
            dashboard=DashboardSettings.from_env(env),
            knowledge=KnowledgeBaseSettings.from_env(env),
            api=ApiSettings.from_env(env) if api else None,
        )
