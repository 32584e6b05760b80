"""The worker's settings: defaults, overrides and refusals, from environment variables."""

from __future__ import annotations

import pytest

from common.settings import SettingsError
from control_plane.settings import WorkerSettings

BASE = {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r/0"}


def test_defaults() -> None:
    settings = WorkerSettings.from_env(BASE)
    assert settings.worker_metrics_port == 9102
    assert settings.reaper_interval_s == 2.0
    assert settings.reaper_per_call_limit == 500
    usage = settings.usage
    assert (usage.read_count, usage.read_block_ms, usage.batch_max) == (100, 1000, 5000)
    assert (usage.claim_interval_s, usage.claim_min_idle_s) == (30.0, 60.0)


def test_overrides() -> None:
    settings = WorkerSettings.from_env(
        {
            **BASE,
            "WORKER_METRICS_PORT": "0",
            "USAGE_CLAIM_MIN_IDLE_S": "0.5",
            "WORKER_REAPER_INTERVAL_S": "0.25",
            "USAGE_BATCH_MAX": "40",
        }
    )
    assert settings.worker_metrics_port == 0  # serves no metrics
    assert settings.usage.claim_min_idle_s == 0.5
    assert settings.reaper_interval_s == 0.25
    assert settings.usage.batch_max == 40


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_METRICS_PORT", "70000"),
        ("WORKER_METRICS_PORT", "-1"),
        ("USAGE_BATCH_MAX", "0"),
        ("USAGE_READ_COUNT", "many"),
        ("WORKER_REAPER_INTERVAL_S", "0"),
    ],
)
def test_refusals_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        WorkerSettings.from_env({**BASE, name: value})


def test_the_worker_needs_none_of_the_api_secrets() -> None:
    settings = WorkerSettings.from_env(BASE)  # no JWT_SECRET, no encryption keys
    assert not hasattr(settings, "jwt_secret")
    assert settings.storage.database_url == BASE["DATABASE_URL"]
