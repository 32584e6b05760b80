"""Every setting the code reads is documented in .env.example and the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "crypto", "gateway", "control_plane")
_READ = re.compile(r'env_(?:str|int|float|bool|decimal|list)\(\s*env,\s*"([A-Z0-9_]+)"')


def settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for package in PACKAGES:
        for module in (ROOT / package).rglob("*.py"):
            names |= set(_READ.findall(module.read_text()))
    return names


def test_every_setting_is_in_env_example_and_readme() -> None:
    names = settings_read_by_code()
    assert len(names) > 40
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    missing_example = sorted(name for name in names if f"{name}=" not in example)
    missing_readme = sorted(name for name in names if name not in readme)
    assert missing_example == []
    assert missing_readme == []
