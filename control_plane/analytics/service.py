"""Creator analytics: calls, revenue, errors, distinct developers and latency percentiles of the
creator's agents, per agent and per UTC day or hour, from the rollups (never from call_logs).

The range is widened to whole buckets (from rounded down, to rounded up), and the report says
which range it covers. Sums come straight from the rollups; distinct developers come from the
per-(agent, bucket, developer) sets, since they do not add up across buckets; percentiles come
from merged latency histograms (control_plane/analytics/histogram.py). A call appears once the
worker has ingested it, normally within a second.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from common.errors import ApiError, ErrorCode
from common.validation import invalid, money_text
from control_plane.analytics import histogram, repository
from control_plane.analytics.schemas import (
    AgentMetrics,
    AnalyticsQuery,
    AnalyticsReport,
    BucketMetrics,
    Metrics,
)
from control_plane.auth.principal import Principal
from control_plane.marketplace.pagination import is_uuid
from control_plane.state import ControlPlaneState

MAX_DAYS = 366
MAX_HOURS = 31 * 24
_STEP = {"day": timedelta(days=1), "hour": timedelta(hours=1)}


def _floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC)
    if granularity == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def bucket_range(
    start: datetime | None, end: datetime | None, granularity: str
) -> tuple[datetime, datetime]:
    """[from, to) widened to whole buckets, with the defaults and limits checked."""
    step = _STEP[granularity]
    end = end or datetime.now(UTC)
    start = start or end - (timedelta(days=30) if granularity == "day" else timedelta(days=1))
    if start >= end:
        raise invalid("from", "`from` must be before `to`.")
    first = _floor(start, granularity)
    last = _floor(end, granularity)
    if last < end:
        last += step
    limit = MAX_DAYS if granularity == "day" else MAX_HOURS
    if (last - first) / step > limit:
        raise invalid("from", f"At most {limit} {granularity}s per report.")
    return first, last


def range_masks(start: datetime, end: datetime) -> repository.Masks:
    """The developer-set masks of the hour-aligned range [start, end): the whole days as
    (month, mask of days) pairs, the partial first and last days as (day, mask of hours)."""
    months: dict[date, int] = {}
    edges: dict[date, int] = {}
    moment = start
    while moment < end:
        day_start = moment.replace(hour=0)
        if moment == day_start and moment + timedelta(days=1) <= end:
            month = day_start.date().replace(day=1)
            months[month] = months.get(month, 0) | 1 << (day_start.day - 1)
            moment += timedelta(days=1)
        else:
            edges[moment.date()] = edges.get(moment.date(), 0) | 1 << moment.hour
            moment += timedelta(hours=1)
    return list(months), list(months.values()), list(edges), list(edges.values())


@dataclass(slots=True)
class _Sums:
    calls: int = 0
    billable_calls: int = 0
    errors: int = 0
    revenue: Decimal = Decimal(0)
    latency: list[list[int]] = field(default_factory=list)
    developers: int = 0  # distinct: only meaningful for one (agent, bucket) row

    def add(self, row: asyncpg.Record) -> None:
        self.developers = row["developers"]
        self.calls += row["calls"]
        self.billable_calls += row["billable_calls"]
        self.errors += row["error_calls"]
        self.revenue += row["revenue"]
        self.latency.append(row["latency_histogram"])

    def fields(self, developers: int) -> dict[str, Any]:
        p50: int | None = None
        p95: int | None = None
        if self.latency:
            merged = self.latency[0] if len(self.latency) == 1 else histogram.merge(self.latency)
            p50, p95 = histogram.percentiles(merged, (0.5, 0.95))
        return {
            "calls": self.calls,
            "billable_calls": self.billable_calls,
            "errors": self.errors,
            "revenue": money_text(self.revenue),
            "unique_developers": developers,
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
        }


async def creator_analytics(
    state: ControlPlaneState, principal: Principal, query: AnalyticsQuery
) -> AnalyticsReport:
    if query.agent_id is not None and not is_uuid(query.agent_id):
        raise invalid("agent_id", "Expected a UUID.")
    start, end = bucket_range(query.from_, query.to, query.granularity)
    hourly = query.granularity == "hour"
    async with state.db.acquire() as connection:
        agents = await repository.creator_agents(connection, principal.user_id, query.agent_id)
        if query.agent_id is not None and not agents:
            raise ApiError(ErrorCode.AGENT_NOT_FOUND, "You have no agent with this id.")
        ids = [str(agent["id"]) for agent in agents]
        rows = await repository.buckets(connection, ids, start, end, hourly=hourly)
        masks = range_masks(start, end)
        per_agent = await repository.agent_developers_in_range(connection, ids, masks)
        if query.agent_id is None:
            per_bucket = await repository.creator_developers_per_bucket(
                connection, principal.user_id, start, end, hourly=hourly
            )
            overall = await repository.creator_developers_in_range(
                connection, principal.user_id, masks
            )

    total = _Sums()
    by_bucket: dict[datetime, _Sums] = defaultdict(_Sums)
    by_agent: dict[str, _Sums] = defaultdict(_Sums)
    by_agent_bucket: dict[tuple[str, datetime], _Sums] = defaultdict(_Sums)
    for row in rows:
        agent_id, bucket = str(row["agent_id"]), row["bucket"]
        for sums in (total, by_bucket[bucket], by_agent[agent_id]):
            sums.add(row)
        by_agent_bucket[agent_id, bucket].add(row)
    if query.agent_id is not None:  # one agent: its own distinct developers are the totals
        per_bucket = {bucket: sums.developers for (_, bucket), sums in by_agent_bucket.items()}
        overall = per_agent.get(query.agent_id, 0)

    step = _STEP[query.granularity]
    series = []
    bucket = start
    while bucket < end:
        sums = by_bucket.get(bucket, _Sums())
        series.append(BucketMetrics(start=bucket, **sums.fields(per_bucket.get(bucket, 0))))
        bucket += step
    names = {str(agent["id"]): agent["name"] for agent in agents}
    points: dict[str, list[BucketMetrics]] = defaultdict(list)
    for (agent_id, bucket), sums in sorted(by_agent_bucket.items(), key=lambda item: item[0][1]):
        fields = sums.fields(sums.developers)
        points[agent_id].append(BucketMetrics(start=bucket, **fields))
    agent_reports = []
    for agent_id, sums in sorted(by_agent.items(), key=lambda item: (-item[1].calls, item[0])):
        agent_reports.append(
            AgentMetrics(
                agent_id=agent_id,
                agent_name=names.get(agent_id, ""),
                series=points[agent_id],
                **sums.fields(per_agent.get(agent_id, 0)),
            )
        )
    return AnalyticsReport(
        start,
        end,
        query.granularity,
        Metrics(**total.fields(overall)),
        series,
        agent_reports,
    )
