"""Settings come from the environment and fail loudly, naming the variable, never its value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.settings import (
    SettingsError,
    StorageSettings,
    env_bool,
    env_decimal,
    env_int,
    env_list,
    env_str,
)


def test_storage_settings_read_the_environment() -> None:
    settings = StorageSettings.from_env(
        {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://z", "DATABASE_POOL_MAX": "5"}
    )
    assert settings.database_url == "postgresql://x/y"
    assert settings.redis_url == "redis://z"
    assert settings.database_pool_max == 5


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
