"""The real browser for the dashboard's tests: Debian's chromium driven by Playwright.

No browser is downloaded (`playwright install` cannot work here): the tests use
/usr/bin/chromium and install Debian's package when it is missing, as root or through
`sudo -n`; only when neither is possible do they skip, saying why. Screenshots go to
`.data/test-artifacts/dashboard/` (or AGENTLINK_TEST_ARTIFACTS), printed at the end of the run.
axe-core, vendored in assets/, checks each page; serious and critical violations fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ASSETS = Path(__file__).resolve().parent / "assets"
AXE_SOURCE = ASSETS / "axe.min.js"
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("AGENTLINK_TEST_ARTIFACTS", ROOT / ".data" / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "dashboard"
BLOCKING_IMPACTS = ("serious", "critical")


def _apt(*args: str) -> subprocess.CompletedProcess[bytes]:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        [*prefix, "apt-get", *args], capture_output=True, env=env, check=False, timeout=900
    )


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt if missing; skips only when apt cannot run."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip("the browser tests need Debian's chromium and this machine has no apt-get")
    if os.geteuid() != 0 and shutil.which("sudo") is None:
        pytest.skip("chromium is missing and this user cannot install it (not root, no sudo)")
    result = _apt("install", "-y", "--no-install-recommends", "chromium")
    if result.returncode != 0:
        _apt("update")
        result = _apt("install", "-y", "--no-install-recommends", "chromium")
    if result.returncode != 0 or not CHROMIUM.exists():
        tail = result.stderr.decode(errors="replace")[-500:]
        if os.geteuid() != 0 and b"password" in result.stderr:
            pytest.skip("chromium is missing and sudo needs a password to install it")
        raise RuntimeError(f"apt-get install chromium failed: {tail}")
    return CHROMIUM


def launch_args() -> list[str]:
    # As root Chromium refuses to start with its sandbox on; a test browser visits only
    # our own loopback pages.
    return ["--no-sandbox"] if os.geteuid() == 0 else []


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "page"


ALL_RULES = "{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice']}"
# What a colour scheme can change: the dark theme is checked for these only.
COLOUR_RULES = "{type: 'rule', values: ['color-contrast', 'link-in-text-block']}"


async def axe_violations(page: Page, run_only: str = ALL_RULES) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE_SOURCE.read_text(encoding="utf-8"))
    results: dict[str, Any] = await page.evaluate(
        f"""async () => await axe.run(document, {{
               runOnly: {run_only}, resultTypes: ['violations'],
           }})"""
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [node["target"] for node in v["nodes"]][:5]}
        for v in results["violations"]
        if v["impact"] in BLOCKING_IMPACTS
    ]  # fmt: skip


async def check_pages(page: Page, pages: tuple[tuple[str, str], ...]) -> list[str]:
    """`check_page` on each (path, name) in turn."""
    problems = []
    for path, name in pages:
        await page.goto(path)
        problems += await check_page(page, name)
    return problems


async def check_page(page: Page, name: str) -> list[str]:
    """Screenshot the page in light and dark and run axe on both (every rule in light, the
    colour rules in dark); returns the problems."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for scheme, rules in (("light", ALL_RULES), ("dark", COLOUR_RULES)):
        await page.emulate_media(color_scheme=scheme)
        await page.screenshot(path=SCREENSHOTS / f"{_slug(name)}-{scheme}.png", full_page=True)
        for violation in await axe_violations(page, rules):
            problems.append(f"{name} ({scheme}): {violation}")
    await page.emulate_media(color_scheme="light")
    return problems
