"""Creator analytics: calls and revenue per day and per agent as charts (server-rendered SVG,
control_plane/dashboard/charts.py) with the same numbers in tables, for the last 7, 30 or 90
days, all agents or one. The numbers are the analytics service's, the API's own report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from markupsafe import Markup
from starlette.responses import Response

from common.domain import UserType
from control_plane.agents import service as agents
from control_plane.agents.schemas import ListAgentsQuery
from control_plane.analytics import service as analytics
from control_plane.analytics.schemas import AnalyticsQuery
from control_plane.dashboard.charts import Number, Point, bar_chart, name_tick
from control_plane.dashboard.pages import Page, PageContext
from control_plane.dashboard.templating import money
from control_plane.marketplace.pagination import is_uuid

CREATORS = frozenset({UserType.CREATOR})
RANGES = (7, 30, 90)


def _usd(value: Number) -> str:
    return money(value, 2)


def _chart(chart_id: str, title: str, points: list[Point], **options: Any) -> tuple[str, Markup]:
    return title, bar_chart(chart_id, title, points, **options)


async def analytics_page(ctx: PageContext) -> Response:
    raw = ctx.query.get("days", "30")
    days = int(raw) if raw.isdigit() and int(raw) in RANGES else 30
    agent_id = ctx.query.get("agent", "").strip()
    chosen = agent_id if is_uuid(agent_id) else None
    end = datetime.now(UTC)
    report = await analytics.creator_analytics(
        ctx.state, ctx.user, AnalyticsQuery(from_=end - timedelta(days=days), to=end,
                                            agent_id=chosen),
    )  # fmt: skip
    listing = await agents.list_agents(ctx.state, ctx.user, ListAgentsQuery(page_size=100))
    day = [bucket.start.date().isoformat() for bucket in report.series]
    charts = [
        _chart("calls-per-day", f"Calls per day, last {days} days",
                  [Point(d, b.calls) for d, b in zip(day, report.series, strict=True)],
                  unit=" calls"),
        _chart("revenue-per-day", f"Revenue per day, last {days} days",
                  [Point(d, Decimal(b.revenue)) for d, b in zip(day, report.series, strict=True)],
                  formatter=_usd, alternate=True),
    ]  # fmt: skip
    if chosen is None and report.by_agent:
        charts += [
            _chart("calls-per-agent", f"Calls per agent, last {days} days",
                      [Point(a.agent_name, a.calls) for a in report.by_agent], unit=" calls",
                      tick=name_tick),
            _chart("revenue-per-agent", f"Revenue per agent, last {days} days",
                      [Point(a.agent_name, Decimal(a.revenue)) for a in report.by_agent],
                      formatter=_usd, alternate=True, tick=name_tick),
        ]  # fmt: skip
    return ctx.render(
        "creator/analytics.html", report=report, days=days, ranges=RANGES, charts=charts,
        agents=listing.items, chosen=chosen,
        chosen_name=next((a.name for a in listing.items if a.id == chosen), None),
    )  # fmt: skip


PAGES = [Page("GET", "/creator/analytics", analytics_page, users=CREATORS)]
