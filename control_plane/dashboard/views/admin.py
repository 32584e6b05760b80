"""Admin pages: stats, users (suspend/activate), agents (force status), moderation queue,
settlements, feature flags, system health, audit log. Each page needs the same permission as
its API route (the seed's RBAC table), and every change goes through the admin services, so it
is audited and written through to the gateway exactly as over the API."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.admin import moderation, service, system
from control_plane.admin.schemas import (
    AdminAgentQuery,
    AdminUserQuery,
    AgentStatusUpdate,
    AuditQuery,
    UserStatusUpdate,
)
from control_plane.auth.principal import Permission
from control_plane.dashboard.forms import blank_to_none, convert
from control_plane.dashboard.pages import Page, PageContext
from control_plane.earnings import service as earnings
from control_plane.earnings.schemas import HistoryQuery, PendingQuery, TriggerSettlement
from control_plane.feature_flags import service as flags
from control_plane.reviews.service import Decision

ADMINS = frozenset({UserType.ADMIN})


def _filters(ctx: PageContext, names: tuple[str, ...]) -> dict[str, str]:
    return {name: ctx.query.get(name, "").strip() for name in names}


def _page_number(ctx: PageContext) -> int:
    raw = ctx.query.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 100_000 else 1


def _back(ctx: PageContext, default: str) -> str:
    """Where a form came from (its own list, with filters), else `default`."""
    target = ctx.form["back"]
    return target if target.startswith("/admin") and not target.startswith("//") else default


def _listing_query(ctx: PageContext, filters: dict[str, str], kind: type[Any]) -> Any:
    """A page of 25 of an admin listing, filtered as the form says."""
    return convert({**blank_to_none(filters), "page": _page_number(ctx), "page_size": 25}, kind)


def _status_update(ctx: PageContext, kind: type[Any]) -> Any:
    """The status form's new status and optional reason, as `kind`."""
    reason = ctx.form["reason"].strip()
    return convert(blank_to_none({"status": ctx.form["status"], "reason": reason}), kind)


async def stats(ctx: PageContext) -> Response:
    return ctx.render("admin/stats.html", stats=await service.dashboard_stats(ctx.state))


async def users(ctx: PageContext) -> Response:
    filters = _filters(ctx, ("q", "user_type", "status"))
    query: AdminUserQuery = _listing_query(ctx, filters, AdminUserQuery)
    listing = await service.list_users(ctx.state, query)
    return ctx.render("admin/users.html", listing=listing, filters=filters,
                      can_manage=ctx.user.can(Permission.MANAGE_USERS))  # fmt: skip


async def user_detail(ctx: PageContext) -> Response:
    detail = await service.user_detail(ctx.state, ctx.path["user_id"])
    return ctx.render("admin/user.html", detail=detail,
                      can_manage=ctx.user.can(Permission.MANAGE_USERS))  # fmt: skip


async def set_user_status(ctx: PageContext) -> Response:
    body: UserStatusUpdate = _status_update(ctx, UserStatusUpdate)
    user = await service.set_user_status(
        ctx.state, ctx.user, ctx.path["user_id"], body, ctx.client_ip
    )
    verb = "suspended" if user.status == "suspended" else "reactivated"
    return ctx.redirect(_back(ctx, "/admin/users"), notice=f"{user.email} is {verb}.")


async def agent_list(ctx: PageContext) -> Response:
    filters = _filters(ctx, ("q", "status"))
    query: AdminAgentQuery = _listing_query(ctx, filters, AdminAgentQuery)
    listing = await service.list_agents(ctx.state, query)
    return ctx.render("admin/agents.html", listing=listing, filters=filters,
                      can_manage=ctx.user.can(Permission.MANAGE_AGENTS))  # fmt: skip


async def set_agent_status(ctx: PageContext) -> Response:
    body: AgentStatusUpdate = _status_update(ctx, AgentStatusUpdate)
    agent = await service.set_agent_status(
        ctx.state, ctx.user, ctx.path["agent_id"], body, ctx.client_ip
    )
    return ctx.redirect(_back(ctx, "/admin/agents"), notice=f"“{agent.name}” is {agent.status}.")


async def moderation_queue(ctx: PageContext) -> Response:
    cursor = ctx.query.get("cursor") or None
    page = await moderation.queue(ctx.state, 50, cursor)
    return ctx.render("admin/moderation.html", page=page)


_DECISIONS = {"approve": Decision.APPROVED, "reject": Decision.REJECTED}


async def decide(ctx: PageContext) -> Response:
    decision = _DECISIONS.get(ctx.path["decision"])
    if decision is None:
        raise ApiError(ErrorCode.ROUTE_NOT_FOUND)
    result = await moderation.decide(
        ctx.state, ctx.user, ctx.path["review_id"], decision, ip=ctx.client_ip
    )
    return ctx.redirect("/admin/moderation", notice=f"Review {result.status}.")


async def settlements(ctx: PageContext) -> Response:
    """Unsettled earnings per creator, a button to settle every ended period now, and the
    settlement history (filter by creator)."""
    creator = ctx.query.get("creator_id", "").strip()
    pending_cursor = ctx.query.get("pending") or None
    history_cursor = ctx.query.get("cursor") or None
    pending: PendingQuery = convert(
        {"limit": 25, **({"cursor": pending_cursor} if pending_cursor else {})}, PendingQuery
    )
    history: HistoryQuery = convert(
        blank_to_none({"creator_id": creator, "cursor": history_cursor or "", "limit": 25}),
        HistoryQuery,
    )
    return ctx.render(
        "admin/settlements.html", pending=await earnings.pending(ctx.state, pending),
        history=await earnings.history(ctx.state, history), creator_id=creator,
    )  # fmt: skip


async def trigger_settlements(ctx: PageContext) -> Response:
    body: TriggerSettlement = convert(
        blank_to_none({"creator_id": ctx.form["creator_id"].strip()}), TriggerSettlement
    )
    result = await earnings.trigger(ctx.state, ctx.user, body, ctx.client_ip)
    count = len(result.settlements)
    notice = (
        f"Settled {count} period{'' if count == 1 else 's'}: ${result.gross} gross, "
        f"${result.platform_fees} in fees, ${result.net} to creators."
        if count
        else "Nothing was due: every ended period is already settled."
    )
    return ctx.redirect("/admin/settlements", notice=notice)


async def feature_flags(ctx: PageContext) -> Response:
    return ctx.render("admin/flags.html", flags=await flags.list_flags(ctx.state))


async def set_flag(ctx: PageContext) -> Response:
    enabled = ctx.form["enabled"] == "true"
    flag = await flags.set_flag(ctx.state, ctx.user, ctx.path["key"], enabled, ctx.client_ip)
    state = "on" if flag.enabled else "off"
    return ctx.redirect("/admin/flags", notice=f"{flag.key} is {state}.")


async def health(ctx: PageContext) -> Response:
    report = await system.health(ctx.state)
    checks: list[tuple[str, Any]] = [("PostgreSQL", report.postgres),
                                     ("Migrations", report.migrations), ("Redis", report.redis),
                                     ("Usage backlog", report.usage_backlog)]  # fmt: skip
    return ctx.render("admin/system.html", report=report, checks=checks)


async def audit(ctx: PageContext) -> Response:
    filters = _filters(ctx, ("action", "target_type", "target_id", "actor_id"))
    before = ctx.query.get("before", "")
    query: AuditQuery = convert(
        {**blank_to_none(filters), **({"before": before} if before.isdigit() else {}),
         "limit": 50},
        AuditQuery,
    )  # fmt: skip
    page = await service.audit_log(ctx.state, query)
    return ctx.render("admin/audit.html", page=page, filters=filters)


VIEW_USERS, MANAGE_USERS = Permission.VIEW_USERS, Permission.MANAGE_USERS
VIEW_AGENTS, MANAGE_AGENTS = Permission.VIEW_AGENTS, Permission.MANAGE_AGENTS
MODERATE, PAYMENTS, SYSTEM = (Permission.MODERATE_CONTENT, Permission.MANAGE_PAYMENTS,
                              Permission.SYSTEM_ADMIN)  # fmt: skip
PAGES = [
    Page("GET", "/admin", stats, users=ADMINS, permission=VIEW_USERS),
    Page("GET", "/admin/users", users, users=ADMINS, permission=VIEW_USERS),
    Page("GET", "/admin/users/{user_id}", user_detail, users=ADMINS, permission=VIEW_USERS),
    Page("POST", "/admin/users/{user_id}/status", set_user_status, users=ADMINS,
         permission=MANAGE_USERS),
    Page("GET", "/admin/agents", agent_list, users=ADMINS, permission=VIEW_AGENTS),
    Page("POST", "/admin/agents/{agent_id}/status", set_agent_status, users=ADMINS,
         permission=MANAGE_AGENTS),
    Page("GET", "/admin/moderation", moderation_queue, users=ADMINS, permission=MODERATE),
    Page("POST", "/admin/moderation/{review_id}/{decision}", decide, users=ADMINS,
         permission=MODERATE),
    Page("GET", "/admin/settlements", settlements, users=ADMINS, permission=PAYMENTS),
    Page("POST", "/admin/settlements/trigger", trigger_settlements, users=ADMINS,
         permission=PAYMENTS),
    Page("GET", "/admin/flags", feature_flags, users=ADMINS, permission=SYSTEM),
    Page("POST", "/admin/flags/{key}", set_flag, users=ADMINS, permission=SYSTEM),
    Page("GET", "/admin/system", health, users=ADMINS, permission=SYSTEM),
    Page("GET", "/admin/audit", audit, users=ADMINS, permission=SYSTEM),
]  # fmt: skip
