"""The gateway's settings, all from environment variables (see README and .env.example)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from common.settings import Environ, StorageSettings, env_int, env_str


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    storage: StorageSettings
    log_level: str
    max_body_bytes: int

    @classmethod
    def from_env(cls, env: Environ | None = None) -> GatewaySettings:
        env = os.environ if env is None else env
        return cls(
            storage=StorageSettings.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "INFO"),
            max_body_bytes=env_int(env, "GATEWAY_MAX_BODY_BYTES", 1_048_576, minimum=1024),
        )
