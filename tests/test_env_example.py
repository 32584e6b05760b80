"""Every setting the code reads is documented in .env.example and the README."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

from common.settings import EnvSettings, env_var

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "crypto", "gateway", "control_plane")
# A single reader (`env_int(env, "NAME", ...)`) or a variable a from_env reads itself.
_READ = re.compile(
    r'(?:env_(?:str|int|float|bool|decimal|list)\(\s*\w+,|\w+\.get\()\s*"([A-Z][A-Z0-9_]+)"'
)


def _settings_classes() -> list[type[EnvSettings]]:
    for package in PACKAGES:
        for module in (ROOT / package).rglob("settings.py"):
            importlib.import_module(".".join(module.relative_to(ROOT).with_suffix("").parts))
    found: list[type[EnvSettings]] = []
    pending = list(EnvSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.split(".")[0] in PACKAGES]


def settings_read_by_code() -> set[str]:
    names = {
        spec.name
        for cls in _settings_classes()
        for field in dataclasses.fields(cls)  # type: ignore[arg-type]
        if (spec := env_var(field)) is not None
    }
    for package in PACKAGES:
        for module in (ROOT / package).rglob("*.py"):
            names |= set(_READ.findall(module.read_text()))
    return names


def test_every_settings_module_is_declared() -> None:
    modules = {cls.__module__ for cls in _settings_classes()}
    assert {"common.settings", "gateway.settings", "control_plane.settings"} <= modules
    assert len(modules) >= 8


def test_every_setting_is_in_env_example_and_readme() -> None:
    names = settings_read_by_code()
    assert len(names) > 40
    assert {"DATABASE_URL", "JWT_SECRET", "STRIPE_SECRET_KEY", "WEBHOOK_MAX_RETRIES"} <= names
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    missing_example = sorted(name for name in names if f"{name}=" not in example)
    missing_readme = sorted(name for name in names if name not in readme)
    assert missing_example == []
    assert missing_readme == []
