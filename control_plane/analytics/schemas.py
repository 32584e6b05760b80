"""Query and response bodies of the creator analytics route."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from control_plane.schema_types import Moment, UuidText


class AnalyticsQuery(msgspec.Struct, forbid_unknown_fields=True):
    # [from, to), widened to whole UTC buckets; default the last 30 days (hour: 24 hours).
    from_: Moment | None = msgspec.field(default=None, name="from")
    to: Moment | None = None
    agent_id: UuidText | None = None
    granularity: Literal["day", "hour"] = "day"


class Metrics(msgspec.Struct):
    """The numbers of a set of calls: the range's, one bucket's or one agent's."""

    calls: int
    billable_calls: int
    errors: int  # upstream errors, timeouts and answers withheld by the leak guard
    revenue: str  # USD, gross
    unique_developers: int
    latency_p50_ms: int | None  # successful calls; within ~10% (histogram buckets)
    latency_p95_ms: int | None


class BucketMetrics(Metrics, kw_only=True):
    start: datetime


class AgentMetrics(Metrics, kw_only=True):
    agent_id: str
    agent_name: str
    series: list[BucketMetrics]  # the agent's non-empty buckets


class AnalyticsReport(msgspec.Struct):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    granularity: str
    totals: Metrics
    series: list[BucketMetrics]  # every bucket of the range, zeros included
    by_agent: list[AgentMetrics]
