"""Admin routes (the seed's /api/v1/admin tree): path → handler, each with the permission of
the seed's RBAC table that it needs. Every route is for admins only; within admins, the
`permission` field is what `control_plane.api` enforces (403 `40301` without it)."""

from __future__ import annotations

from starlette.responses import Response

from common.metrics import render_metrics
from control_plane.admin import moderation, roles, service, system
from control_plane.admin.schemas import (
    AdminAgent,
    AdminAgentPage,
    AdminAgentQuery,
    AdminUser,
    AdminUserDetail,
    AdminUserPage,
    AdminUserQuery,
    AgentStatusUpdate,
    AuditPage,
    AuditQuery,
    CacheCleared,
    DashboardStats,
    ModerationQuery,
    SystemHealth,
    UserDeleted,
    UserRateTierUpdate,
    UserRoleUpdate,
    UserStatusUpdate,
)
from control_plane.api import Context, RouteGroup
from control_plane.auth.principal import Permission, UserType
from control_plane.reviews.schemas import ModeratedReview, PendingReviewPage
from control_plane.reviews.service import Decision


async def admin_dashboard_stats(context: Context) -> DashboardStats:
    return await service.dashboard_stats(context.state)


async def admin_list_users(context: Context, query: AdminUserQuery) -> AdminUserPage:
    return await service.list_users(context.state, query)


async def admin_get_user(context: Context) -> AdminUserDetail:
    return await service.user_detail(context.state, context.path["user_id"])


async def admin_set_user_status(context: Context, body: UserStatusUpdate) -> AdminUser:
    return await service.set_user_status(
        context.state, context.user, context.path["user_id"], body, context.client_ip
    )


async def admin_set_user_rate_tier(context: Context, body: UserRateTierUpdate) -> AdminUser:
    return await service.set_user_rate_tier(
        context.state, context.user, context.path["user_id"], body, context.client_ip
    )


async def admin_change_user_role(context: Context, body: UserRoleUpdate) -> AdminUser:
    return await roles.change_user_role(
        context.state, context.user, context.path["user_id"], body, context.client_ip
    )


async def admin_delete_user(context: Context) -> UserDeleted:
    return await service.delete_user(
        context.state, context.user, context.path["user_id"], context.client_ip
    )


async def admin_list_agents(context: Context, query: AdminAgentQuery) -> AdminAgentPage:
    return await service.list_agents(context.state, query)


async def admin_get_agent(context: Context) -> AdminAgent:
    return await service.agent_detail(context.state, context.path["agent_id"])


async def admin_set_agent_status(context: Context, body: AgentStatusUpdate) -> AdminAgent:
    return await service.set_agent_status(
        context.state, context.user, context.path["agent_id"], body, context.client_ip
    )


async def admin_moderation_queue(context: Context, query: ModerationQuery) -> PendingReviewPage:
    return await moderation.queue(context.state, query.limit, query.cursor)


async def admin_approve_review(context: Context) -> ModeratedReview:
    return await moderation.decide(
        context.state, context.user, context.path["review_id"], Decision.APPROVED,
        ip=context.client_ip,
    )  # fmt: skip


async def admin_reject_review(context: Context) -> ModeratedReview:
    return await moderation.decide(
        context.state, context.user, context.path["review_id"], Decision.REJECTED,
        ip=context.client_ip,
    )  # fmt: skip


async def admin_system_health(context: Context) -> SystemHealth:
    return await system.health(context.state)


async def admin_system_metrics(context: Context) -> Response:
    body, content_type = render_metrics(context.state.registry)
    return Response(body, media_type=content_type)


async def admin_clear_cache(context: Context) -> CacheCleared:
    return await system.clear_cache(context.state, context.user, context.client_ip)


async def admin_audit_log(context: Context, query: AuditQuery) -> AuditPage:
    return await service.audit_log(context.state, query)


PREFIX = "/api/v1/admin"
_ADMIN = RouteGroup(PREFIX, frozenset({UserType.ADMIN}), "admin")
VIEW_USERS, MANAGE_USERS = Permission.VIEW_USERS, Permission.MANAGE_USERS
VIEW_AGENTS, MANAGE_AGENTS = Permission.VIEW_AGENTS, Permission.MANAGE_AGENTS
MODERATE, SYSTEM = Permission.MODERATE_CONTENT, Permission.SYSTEM_ADMIN

ROUTES = [
    _ADMIN.route("GET", "/dashboard/stats", admin_dashboard_stats, "Platform statistics",
                 response=DashboardStats, permission=VIEW_USERS),
    # Users
    _ADMIN.route("GET", "/users", admin_list_users, "List users (search, filter, paginate)",
                 query=AdminUserQuery, response=AdminUserPage, permission=VIEW_USERS),
    _ADMIN.route("GET", "/users/{user_id}", admin_get_user, "A user's details",
                 response=AdminUserDetail, permission=VIEW_USERS),
    _ADMIN.route("PUT", "/users/{user_id}/status", admin_set_user_status,
                 "Suspend or reactivate a user (takes effect on the gateway's next request)",
                 body=UserStatusUpdate, response=AdminUser, permission=MANAGE_USERS),
    _ADMIN.route("PUT", "/users/{user_id}/rate-tier", admin_set_user_rate_tier,
                 "Set a user's rate tier (takes effect on the gateway's next request)",
                 body=UserRateTierUpdate, response=AdminUser, permission=MANAGE_USERS),
    _ADMIN.route("PUT", "/users/{user_id}/role", admin_change_user_role,
                 "Change a user's type or admin role (their access tokens end at once)",
                 body=UserRoleUpdate, response=AdminUser, permission=MANAGE_USERS),
    _ADMIN.route("DELETE", "/users/{user_id}", admin_delete_user,
                 "Close an account: anonymise it, revoke its keys and sessions",
                 response=UserDeleted, permission=MANAGE_USERS),
    # Agents
    _ADMIN.route("GET", "/agents", admin_list_agents, "List agents (filter, paginate)",
                 query=AdminAgentQuery, response=AdminAgentPage, permission=VIEW_AGENTS),
    _ADMIN.route("GET", "/agents/{agent_id}", admin_get_agent,
                 "An agent's details (never its config)", response=AdminAgent,
                 permission=VIEW_AGENTS),
    _ADMIN.route("PUT", "/agents/{agent_id}/status", admin_set_agent_status,
                 "Force an agent's status (takes effect on the gateway's next request)",
                 body=AgentStatusUpdate, response=AdminAgent, permission=MANAGE_AGENTS),
    # Moderation
    _ADMIN.route("GET", "/moderation/queue", admin_moderation_queue,
                 "Reviews waiting for moderation, oldest first", query=ModerationQuery,
                 response=PendingReviewPage, permission=MODERATE),
    _ADMIN.route("POST", "/moderation/reviews/{review_id}/approve", admin_approve_review,
                 "Approve a review (it counts in the agent's rating)", response=ModeratedReview,
                 permission=MODERATE),
    _ADMIN.route("POST", "/moderation/reviews/{review_id}/reject", admin_reject_review,
                 "Reject a review (it leaves the agent's rating)", response=ModeratedReview,
                 permission=MODERATE),
    # System
    _ADMIN.route("GET", "/system/health", admin_system_health,
                 "Postgres, Redis, migrations and usage-stream backlog", response=SystemHealth,
                 permission=SYSTEM),
    _ADMIN.route("GET", "/system/metrics", admin_system_metrics,
                 "This control-plane process's Prometheus metrics", permission=SYSTEM),
    _ADMIN.route("POST", "/system/cache/clear", admin_clear_cache,
                 "Drop the gateway's rebuildable key/user/agent records (never live counters)",
                 response=CacheCleared, permission=SYSTEM),
    # Audit
    _ADMIN.route("GET", "/audit-log", admin_audit_log, "The audit trail, newest first",
                 query=AuditQuery, response=AuditPage, permission=SYSTEM),
]  # fmt: skip
