"""The Jinja2 environment the pages render with, built once at start-up.

Autoescaping is on for every template, and undefined names fail loudly (StrictUndefined), so a
typo in a template is a test failure, not a blank on a page. Static files are linked with a
content hash (`static("app.css")` → `/static/app.css?v=…`), so a deploy never serves a stale
stylesheet from a browser cache.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import jinja2

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


def static_versions(folder: Path = STATIC_DIR) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def money(value: object, places: int | None = None) -> str:
    """USD for people: `$0.01`, `$1,234.50`; exact (from Decimal or a decimal string)."""
    if value is None:
        return "—"
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if places is None:
        places = max(2, -amount.normalize().as_tuple().exponent)  # type: ignore[operator]
    return f"${amount:,.{places}f}"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def number(value: int | float | Decimal | None) -> str:
    return "—" if value is None else f"{value:,}"


def create_templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    versions = static_versions()

    def static(name: str) -> str:
        return f"/static/{name}?v={versions[name]}"

    environment.globals["static"] = static
    environment.filters["money"] = money
    environment.filters["when"] = when
    environment.filters["number"] = number
    return environment
