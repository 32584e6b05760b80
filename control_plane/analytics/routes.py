"""Analytics routes: path → handler. Creators only (developers' usage is in developers/)."""

from __future__ import annotations

from control_plane.analytics import service
from control_plane.analytics.schemas import AnalyticsQuery, AnalyticsReport
from control_plane.api import ApiRoute, Context
from control_plane.auth.principal import UserType


async def creator_analytics(context: Context, query: AnalyticsQuery) -> AnalyticsReport:
    return await service.creator_analytics(context.state, context.user, query)


ROUTES = [
    ApiRoute("GET", "/api/v1/creators/me/analytics", creator_analytics,
             "Calls, revenue, errors, distinct developers and p50/p95 latency of the caller's "
             "agents, per agent and per UTC day or hour", query=AnalyticsQuery,
             response=AnalyticsReport, user_types=frozenset({UserType.CREATOR}),
             tags=("analytics",)),
]  # fmt: skip
