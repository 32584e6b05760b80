"""Settings come from the environment and fail loudly, naming the variable, never its value."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Literal

import pytest

from common.settings import (
    EnvSettings,
    SettingsError,
    StorageSettings,
    env,
    env_bool,
    env_decimal,
    env_int,
    env_list,
    env_str,
    env_var,
    read_settings,
)


def test_storage_settings_read_the_environment() -> None:
    settings = StorageSettings.from_env(
        {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://z", "DATABASE_POOL_MAX": "5"}
    )
    assert settings.database_url == "postgresql://x/y"
    assert settings.redis_url == "redis://z"
    assert settings.database_pool_max == 5
    assert settings.database_pool_min == 1
    assert "postgresql://x/y" not in repr(settings)


def test_missing_required_variable_is_named() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        StorageSettings.from_env({"REDIS_URL": "redis://z"})


def test_malformed_values_name_the_variable_not_the_value() -> None:
    with pytest.raises(SettingsError, match="PORT") as caught:
        env_int({"PORT": "s3cr3t"}, "PORT", 1)
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(SettingsError, match=">="):
        env_int({"PORT": "0"}, "PORT", 1, minimum=1)
    with pytest.raises(SettingsError):
        env_bool({"FLAG": "maybe"}, "FLAG", False)
    with pytest.raises(SettingsError):
        env_decimal({"PRICE": "NaN"}, "PRICE", "1")


def test_defaults_and_parsing() -> None:
    assert env_str({}, "X", "d") == "d"
    assert env_bool({"F": "Yes"}, "F", False) is True
    assert env_bool({"F": "off"}, "F", True) is False
    assert env_decimal({}, "P", "0.01") == Decimal("0.01")
    assert env_list({"L": " a, b ,,c "}, "L", ()) == ("a", "b", "c")


def _hex(name: str, raw: str) -> int:
    try:
        return int(raw, 16)
    except ValueError:
        raise SettingsError(f"{name} must be hexadecimal") from None


@dataclasses.dataclass(frozen=True, slots=True)
class _Inner(EnvSettings):
    flag: bool = env("T_FLAG", False)


@dataclasses.dataclass(frozen=True, slots=True)
class _Outer(EnvSettings):
    inner: _Inner
    given: str
    count: int = env("T_COUNT", 3, minimum=1, maximum=9)
    ratio: float = env("T_RATIO", 0.5)
    price: Decimal = env("T_PRICE", Decimal("0.01"))  # noqa: RUF009 - env() declares the field
    names: tuple[str, ...] = env("T_NAMES", ("a",))
    mode: Literal["fast", "slow"] = env("T_MODE", "fast")
    colour: str = env("T_COLOUR", "red", choices=("red", "blue"))
    mask: int = env("T_MASK", "ff", parse=_hex)
    token: str | None = env("T_TOKEN", None, secret=True)
    url: str = env("T_URL")


def test_a_declared_settings_class_reads_each_field_by_its_type() -> None:
    settings = read_settings(
        _Outer,
        {
            "T_URL": "u", "T_FLAG": "on", "T_COUNT": "9", "T_RATIO": "0.25", "T_PRICE": "1.50",
            "T_NAMES": "x, y", "T_MODE": "SLOW", "T_COLOUR": "blue", "T_MASK": "10",
            "T_TOKEN": "hunter2",
        },
        given="g",
    )  # fmt: skip
    assert settings == _Outer(
        _Inner(flag=True), "g", 9, 0.25, Decimal("1.50"), ("x", "y"), "slow", "blue", 16,
        "hunter2", "u",
    )  # fmt: skip
    assert "hunter2" not in repr(settings)


def test_unset_or_blank_variables_take_the_defaults() -> None:
    settings = read_settings(_Outer, {"T_URL": "u", "T_COUNT": " "}, given="g")
    assert (settings.inner.flag, settings.count, settings.names, settings.mask) == (
        False, 3, ("a",), 255,
    )  # fmt: skip
    assert settings.token is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("T_URL", ""), ("T_COUNT", "0"), ("T_COUNT", "10"), ("T_COUNT", "x"), ("T_RATIO", "x"),
        ("T_PRICE", "Infinity"), ("T_MODE", "medium"), ("T_COLOUR", "green"), ("T_MASK", "zz"),
        ("T_FLAG", "2"),
    ],
)  # fmt: skip
def test_a_bad_variable_is_named_without_its_value(variable: str, value: str) -> None:
    environ = {"T_URL": "u", variable: value}
    with pytest.raises(SettingsError, match=variable) as caught:
        read_settings(_Outer, environ, given="g")
    if value.strip():
        assert value not in str(caught.value).removeprefix(variable)


def test_every_field_names_its_variable() -> None:
    names = {
        spec.name for field in dataclasses.fields(_Outer) if (spec := env_var(field)) is not None
    }
    assert "T_URL" in names
    assert "T_FLAG" not in names  # the nested class's own
