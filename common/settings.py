"""Typed settings from environment variables, declared once per field.

Each app's settings are frozen dataclasses whose fields say which variable they come from:

    @dataclass(frozen=True, slots=True)
    class StorageSettings(EnvSettings):
        database_url: str = env("DATABASE_URL")
        database_pool_max: int = env("DATABASE_POOL_MAX", 10, minimum=1)

`StorageSettings.from_env(environ)` reads every field the same way (`read_settings`): an unset
or empty variable takes the default (no default: it is required), the value is parsed as the
field's type (str, int, float, bool, Decimal, tuple of str, a Literal), bounds and choices are
checked, and a field that is itself a settings dataclass is read whole. A field whose value
depends on others is given by the class's `derived`. A missing or malformed variable
fails at start-up with the variable's name, never with its value (values may be secrets).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Self, TypeVar

Environ = Mapping[str, str]
S = TypeVar("S")


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
_SPEC = "agentlink.env"


@dataclass(frozen=True, slots=True)
class EnvVar:
    """Where a settings field comes from and what it must be."""

    name: str
    default: Any
    minimum: float | None
    maximum: float | None
    choices: tuple[str, ...] | None
    # (variable name, text) -> value, for what the field's type alone does not say; it reads
    # a text default too.
    parse: Callable[[str, str], Any] | None


def env(
    name: str,
    default: Any = REQUIRED,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str, str], Any] | None = None,
    secret: bool = False,
) -> Any:
    """A settings field read from the variable `name` (a secret is left out of repr)."""
    spec = EnvVar(name, default, minimum, maximum, choices, parse)
    return dataclasses.field(metadata={_SPEC: spec}, repr=not secret)


def env_var(field: dataclasses.Field[Any]) -> EnvVar | None:
    """The variable a settings field is read from; None for a nested or given field."""
    spec: EnvVar | None = field.metadata.get(_SPEC)
    return spec


class EnvSettings:
    """The base of every settings dataclass: `from_env` reads all its fields."""

    __slots__ = ()

    @classmethod
    def from_env(cls, env: Environ | None = None) -> Self:
        source = os.environ if env is None else env
        return read_settings(cls, source, **cls.derived(source))

    @classmethod
    def derived(cls, env: Environ) -> dict[str, Any]:
        """The fields whose value depends on more than their own variable."""
        return {}


def read_settings(cls: type[S], env: Environ | None = None, **given: Any) -> S:
    """A `cls` from the environment (`os.environ` by default); `given` fields are not read."""
    source = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values = dict(given)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in values:
            continue
        spec, kind = env_var(field), hints[field.name]
        if spec is not None:
            values[field.name] = _read(source, spec, kind)
        elif isinstance(kind, type) and issubclass(kind, EnvSettings):
            values[field.name] = kind.from_env(source)
        else:
            raise TypeError(f"{cls.__name__}.{field.name} is neither env() nor settings")
    return cls(**values)


def _read(source: Environ, spec: EnvVar, kind: Any) -> Any:
    raw = source.get(spec.name)
    if raw is None or raw.strip() == "":
        if spec.default is REQUIRED:
            raise SettingsError(f"{spec.name} is required")
        if spec.parse is None or not isinstance(spec.default, str):
            return spec.default
        raw = spec.default
    if spec.parse is not None:
        return spec.parse(spec.name, raw)
    choices = spec.choices
    if typing.get_origin(kind) is typing.Literal:
        choices = tuple(str(choice) for choice in typing.get_args(kind))
    if choices is not None:
        return _choice(spec.name, raw, choices)
    return _typed(spec, raw, _without_none(kind))


def _without_none(kind: Any) -> Any:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def _typed(spec: EnvVar, raw: str, kind: Any) -> Any:
    name = spec.name
    if kind is str:
        return raw
    if kind is bool:
        return _bool(name, raw)
    if typing.get_origin(kind) is tuple:
        return parse_list(raw)
    value: int | float | Decimal
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer") from None
    elif kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number") from None
    elif kind is Decimal:
        value = parse_decimal(name, raw)
    else:
        raise TypeError(f"{name}: no reader for {kind!r}")
    _bounded(spec, value)
    return value


def parse_decimal(name: str, raw: str) -> Decimal:
    """The variable `name`'s text `raw` as a finite Decimal."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name} must be a decimal number") from None
    if not value.is_finite():
        raise SettingsError(f"{name} must be finite")
    return value


def _bounded(spec: EnvVar, value: Any) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise SettingsError(f"{spec.name} must be >= {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise SettingsError(f"{spec.name} must be <= {spec.maximum}")


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} must be a boolean (1/0, true/false, yes/no, on/off)")


def parse_list(raw: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# --- single readers, for a value that depends on another ---------------------------------


def env_str(env: Environ, name: str, default: str | None = None) -> str:
    value: str = _read(env, _spec(name, REQUIRED if default is None else default), str)
    return value


def env_int(env: Environ, name: str, default: int, *, minimum: int | None = None) -> int:
    value: int = _read(env, _spec(name, default, minimum), int)
    return value


def env_float(env: Environ, name: str, default: float, *, minimum: float | None = None) -> float:
    value: float = _read(env, _spec(name, default, minimum), float)
    return value


def env_decimal(env: Environ, name: str, default: str) -> Decimal:
    value: Decimal = _read(env, _spec(name, Decimal(default)), Decimal)
    return value


def env_bool(env: Environ, name: str, default: bool) -> bool:
    value: bool = _read(env, _spec(name, default), bool)
    return value


def env_list(env: Environ, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value: tuple[str, ...] = _read(env, _spec(name, default), tuple[str, ...])
    return value


def _spec(name: str, default: Any, minimum: float | None = None) -> EnvVar:
    return EnvVar(name, default, minimum, None, None, None)


DEFAULT_FREE_TRIAL_CALLS = 3


def free_trial_calls() -> Any:
    """The FREE_TRIAL_CALLS field: free calls per (developer, agent) pair before quota is used
    (seed property 25 says 3, the default). The one place the number is declared: the gateway's
    admission enforces it (admit.lua gets it as an argument), the dashboard shows it, and
    Postgres records the trial calls made without capping them, so a Redis rebuild never
    hands out calls a lower cap forgot. Set it alike on the gateway and the control plane
    (one ConfigMap key in k8s/)."""
    return env("FREE_TRIAL_CALLS", DEFAULT_FREE_TRIAL_CALLS, minimum=0)


def env_free_trial_calls(env: Environ) -> int:
    """FREE_TRIAL_CALLS on its own (see `free_trial_calls`)."""
    return env_int(env, "FREE_TRIAL_CALLS", DEFAULT_FREE_TRIAL_CALLS, minimum=0)


@dataclass(frozen=True, slots=True)
class StorageSettings(EnvSettings):
    """Where Postgres and Redis are; both apps and the worker need them."""

    database_url: str = env("DATABASE_URL", secret=True)
    database_pool_min: int = env("DATABASE_POOL_MIN", 1, minimum=0)
    database_pool_max: int = env("DATABASE_POOL_MAX", 10, minimum=1)
    redis_url: str = env("REDIS_URL", secret=True)
    redis_socket_timeout_s: float = env("REDIS_SOCKET_TIMEOUT_S", 2.0, minimum=0.01)
    redis_max_connections: int = env("REDIS_MAX_CONNECTIONS", 256, minimum=1)
    # REDIS_URL names any node of a Redis Cluster; the client learns the others from it.
    redis_cluster: bool = env("REDIS_CLUSTER", False)


@dataclass(frozen=True, slots=True)
class OperationsSettings(EnvSettings):
    """How a process follows the feature flags (common/feature_flags.py); the gateway and the
    control plane's API both read them."""

    flags_refresh_s: float = env("FEATURE_FLAGS_REFRESH_S", 2.0, minimum=0.05)
    maintenance_retry_after_s: int = env("MAINTENANCE_RETRY_AFTER_S", 60, minimum=1)
