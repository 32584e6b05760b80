"""Typed settings from environment variables, the pieces each app's settings object is made of.

Each app has one frozen settings dataclass built by a `from_env()` classmethod out of these
readers; a missing or malformed variable fails at start-up with the variable's name, never
with its value (values may be secrets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

Environ = Mapping[str, str]


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


def env_str(env: Environ, name: str, default: str | None = None) -> str:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise SettingsError(f"{name} is required")
        return default
    return value


def env_int(env: Environ, name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}")
    return value


def env_float(env: Environ, name: str, default: float, *, minimum: float | None = None) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}")
    return value


def env_decimal(env: Environ, name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name} must be a decimal number") from None
    if not value.is_finite():
        raise SettingsError(f"{name} must be finite")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(env: Environ, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} must be a boolean (1/0, true/false, yes/no, on/off)")


def env_list(env: Environ, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


DEFAULT_FREE_TRIAL_CALLS = 3


def env_free_trial_calls(env: Environ) -> int:
    """FREE_TRIAL_CALLS: free calls per (developer, agent) pair before quota is used (seed
    property 25 says 3, the default). The one place the number is read: the gateway's
    admission enforces it (admit.lua gets it as an argument), the dashboard shows it, and
    Postgres records the trial calls made without capping them, so a Redis rebuild never
    hands out calls a lower cap forgot. Set it alike on the gateway and the control plane
    (one ConfigMap key in k8s/)."""
    return env_int(env, "FREE_TRIAL_CALLS", DEFAULT_FREE_TRIAL_CALLS, minimum=0)


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where Postgres and Redis are; both apps and the worker need them."""

    database_url: str
    database_pool_min: int
    database_pool_max: int
    redis_url: str
    redis_socket_timeout_s: float
    redis_max_connections: int

    @classmethod
    def from_env(cls, env: Environ | None = None) -> StorageSettings:
        env = os.environ if env is None else env
        return cls(
            database_url=env_str(env, "DATABASE_URL"),
            database_pool_min=env_int(env, "DATABASE_POOL_MIN", 1, minimum=0),
            database_pool_max=env_int(env, "DATABASE_POOL_MAX", 10, minimum=1),
            redis_url=env_str(env, "REDIS_URL"),
            redis_socket_timeout_s=env_float(env, "REDIS_SOCKET_TIMEOUT_S", 2.0, minimum=0.01),
            redis_max_connections=env_int(env, "REDIS_MAX_CONNECTIONS", 256, minimum=1),
        )


@dataclass(frozen=True, slots=True)
class OperationsSettings:
    """How a process follows the feature flags (common/feature_flags.py); the gateway and the
    control plane's API both read them."""

    flags_refresh_s: float
    maintenance_retry_after_s: int

    @classmethod
    def from_env(cls, env: Environ | None = None) -> OperationsSettings:
        env = os.environ if env is None else env
        return cls(
            flags_refresh_s=env_float(env, "FEATURE_FLAGS_REFRESH_S", 2.0, minimum=0.05),
            maintenance_retry_after_s=env_int(env, "MAINTENANCE_RETRY_AFTER_S", 60, minimum=1),
        )
