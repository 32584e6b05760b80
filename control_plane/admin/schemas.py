"""Request, query and response bodies of the admin routes.

Nothing here can carry a secret: no password hash, no key hash, no agent config.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from control_plane.schema_types import PageQuery

Search = Annotated[str, msgspec.Meta(min_length=1, max_length=254)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


# ------------------------------------------------------------------------------------------
# Dashboard
# ------------------------------------------------------------------------------------------


class UserStats(msgspec.Struct):
    total: int
    by_type: dict[str, int]
    by_status: dict[str, int]


class AgentStats(msgspec.Struct):
    total: int
    by_status: dict[str, int]


class CallWindow(msgspec.Struct):
    calls: int
    billable_calls: int
    revenue: Decimal  # sum of cost_usd of billable calls, USD


class CallStats(msgspec.Struct):
    last_24h: CallWindow
    last_30d: CallWindow
    all_time_calls: int  # agents.total_calls (folded in by the usage worker)
    all_time_revenue: Decimal  # agents.total_revenue


class DashboardStats(msgspec.Struct):
    users: UserStats
    agents: AgentStats
    calls: CallStats
    pending_reviews: int
    generated_at: datetime


# ------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------


class AdminUserQuery(PageQuery, forbid_unknown_fields=True):
    q: Search | None = None  # email substring, case-insensitive
    user_type: Literal["creator", "developer", "admin"] | None = None
    status: Literal["active", "suspended", "deleted"] | None = None


class AdminUser(msgspec.Struct):
    id: str
    email: str
    user_type: str
    admin_role: str | None
    status: str
    rate_tier: str
    email_verified: bool
    created_at: datetime
    updated_at: datetime


class AdminUserPage(msgspec.Struct):
    items: list[AdminUser]
    page: int
    page_size: int
    total: int


class AdminQuota(msgspec.Struct):
    total_quota: int
    used_quota: int
    free_quota: int
    remaining: int


class AdminKeyCounts(msgspec.Struct):
    active: int
    revoked: int


class AdminCreatorInfo(msgspec.Struct):
    display_name: str
    verified: bool
    total_earnings: Decimal
    pending_earnings: Decimal
    agents_by_status: dict[str, int]


class AdminUserDetail(msgspec.Struct):
    user: AdminUser
    api_keys: AdminKeyCounts
    quota: AdminQuota | None = None  # developers
    creator: AdminCreatorInfo | None = None  # creators


class UserStatusUpdate(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["active", "suspended"]
    reason: Reason | None = None


class UserRateTierUpdate(msgspec.Struct, forbid_unknown_fields=True):
    rate_tier: Literal["free", "paid"]
    reason: Reason | None = None


class UserDeleted(msgspec.Struct):
    id: str
    status: str
    revoked_api_keys: int
    revoked_sessions: int
    deactivated_agents: int
    disabled_webhooks: int


# ------------------------------------------------------------------------------------------
# Agents
# ------------------------------------------------------------------------------------------


class AdminAgentQuery(PageQuery, forbid_unknown_fields=True):
    q: Search | None = None  # name substring, case-insensitive
    status: Literal["draft", "active", "inactive", "suspended"] | None = None
    creator_id: uuid.UUID | None = None


class AdminAgent(msgspec.Struct):
    """An agent as admins see it: everything but the (encrypted) config."""

    id: str
    creator_id: str
    creator_email: str
    name: str
    category: str | None
    status: str
    price_per_call: Decimal
    version: int
    total_calls: int
    total_revenue: Decimal
    average_rating: Decimal
    review_count: int
    featured: bool
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    description: str | None = None  # detail only


class AdminAgentPage(msgspec.Struct):
    items: list[AdminAgent]
    page: int
    page_size: int
    total: int


class AgentStatusUpdate(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["active", "inactive", "suspended"]
    reason: Reason | None = None


# ------------------------------------------------------------------------------------------
# Moderation
# ------------------------------------------------------------------------------------------


class ModerationQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50
    cursor: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None


# ------------------------------------------------------------------------------------------
# System
# ------------------------------------------------------------------------------------------


class HealthCheck(msgspec.Struct):
    status: Literal["ok", "degraded", "unavailable"]
    latency_ms: float | None = None
    details: dict[str, Any] = {}


class SystemHealth(msgspec.Struct):
    status: Literal["ok", "degraded", "unavailable"]
    postgres: HealthCheck
    migrations: HealthCheck
    redis: HealthCheck
    usage_backlog: HealthCheck
    checked_at: datetime


class CacheCleared(msgspec.Struct):
    deleted: dict[str, int]  # record kind -> keys deleted
    total: int


# ------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------


class AuditQuery(msgspec.Struct, forbid_unknown_fields=True):
    actor_id: uuid.UUID | None = None
    action: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    target_type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    target_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    before: Annotated[int, msgspec.Meta(ge=1)] | None = None  # cursor: entries with id < before
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


class AuditEntry(msgspec.Struct):
    id: int
    actor_id: str | None
    actor_role: str | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    created_at: datetime


class AuditPage(msgspec.Struct):
    items: list[AuditEntry]
    next_before: int | None  # pass as `before` for the next (older) page; None at the end


# What a user may be made: the type, and for an admin the role (one shape per type, so the
# schema itself says that only admins have a role).
class CreatorRole(msgspec.Struct, tag_field="user_type", tag="creator", forbid_unknown_fields=True):
    reason: Reason | None = None


class DeveloperRole(
    msgspec.Struct, tag_field="user_type", tag="developer", forbid_unknown_fields=True
):
    reason: Reason | None = None


class AdminRoleGrant(
    msgspec.Struct, tag_field="user_type", tag="admin", forbid_unknown_fields=True
):
    admin_role: Literal["super_admin", "moderator", "support"]
    reason: Reason | None = None


UserRoleUpdate = CreatorRole | DeveloperRole | AdminRoleGrant
