"""Charts as server-rendered SVG: no chart library, no script, readable without CSS.

Each chart is an `<svg role="img">` with a title and a one-line summary for screen readers,
and a `<title>` per bar for pointer users; templates put the same numbers in a table beside it.
Colours come from the stylesheet (classes, no inline styles), so charts follow the dark theme.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

Number = int | Decimal

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 36


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    value: Number


def _nice_ceiling(value: Number) -> Decimal:
    """The smallest 1, 2 or 5 times 10^k at or above `value` (at least 1): a readable axis top."""
    target = max(Decimal(value), Decimal(1))
    step = Decimal(1)
    while step * 10 <= target:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= target:
            return step * factor
    return step * 10  # pragma: no cover - the loop always returns


def day_tick(label: str) -> str:
    """`2026-12-02` → `12-02`: days under their bars."""
    return label[-5:]


def name_tick(label: str) -> str:
    """A name under its bar, cut to fit (the bar's own title has it whole)."""
    return label if len(label) <= 12 else label[:11] + "…"


def bar_chart(
    chart_id: str,
    title: str,
    points: Sequence[Point],
    *,
    unit: str = "",
    formatter: Callable[[Number], str] = str,
    alternate: bool = False,
    tick: Callable[[str], str] = day_tick,
) -> Markup:
    """A bar chart of `points` in order (days, agents...)."""
    top = _nice_ceiling(max((point.value for point in points), default=0))
    total = sum((Decimal(point.value) for point in points), Decimal(0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(points))
    bar_w = max(1.0, slot * 0.7)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{len(points)} bars, total '
        f"{escape(formatter(total))}{escape(unit)}, highest {escape(formatter(top))}"
        f"{escape(unit)} on the axis.</desc>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{escape(formatter(top))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    label_every = max(1, len(points) // 8)
    css = "bar alt" if alternate else "bar"
    for index, point in enumerate(points):
        height = float(Decimal(point.value) / top) * plot_h if top else 0.0
        x = LEFT + index * slot + (slot - bar_w) / 2
        y = TOP + plot_h - height
        parts.append(
            f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
            f'height="{max(height, 0.0):.1f}"><title>{escape(point.label)}: '
            f"{escape(formatter(point.value))}{escape(unit)}</title></rect>"
        )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(tick(point.label))}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped above
