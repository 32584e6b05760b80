"""The control plane's (and worker's) settings, all from environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

from common.settings import Environ, StorageSettings, env_int, env_str


@dataclass(frozen=True, slots=True)
class ControlPlaneSettings:
    storage: StorageSettings
    log_level: str
    max_body_bytes: int
    partition_months_ahead: int
    worker_maintenance_interval_s: int

    @classmethod
    def from_env(cls, env: Environ | None = None) -> ControlPlaneSettings:
        env = os.environ if env is None else env
        return cls(
            storage=StorageSettings.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            max_body_bytes=env_int(env, "CONTROL_MAX_BODY_BYTES", 10_485_760, minimum=1024),
            partition_months_ahead=env_int(env, "CALL_LOG_PARTITION_MONTHS_AHEAD", 2, minimum=1),
            worker_maintenance_interval_s=env_int(
                env, "WORKER_MAINTENANCE_INTERVAL_S", 3600, minimum=1
            ),
        )
