"""Admin operations on users, agents, moderation and the audit trail.

Every mutation runs in one Postgres transaction that (1) locks the rows it changes, (2)
changes them, (3) appends its audit row (control_plane/audit.py), and (4) writes the
gateway's records (control_plane/gateway_sync.py) last, before commit: if Redis refuses,
everything rolls back and the admin gets 503 `50302`. A suspension, deletion or forced
agent status therefore holds on the gateway's very next request.

Account rules:
- an admin never changes their own account (no self-suspension or self-deletion), so the
  last active super_admin cannot lock the platform out;
- only a super_admin may suspend, reactivate or delete a super_admin (with the seed's role
  table only super_admins hold users:manage, but the rule stands on its own);
- the acting admin's row is locked together with the target (in id order) and must still be
  active: two super_admins suspending each other at the same moment cannot both succeed.

Deletion is a soft delete (the schema's policy: financial history outlives the account).
The account gets status `deleted`; its email is replaced by `deleted-<id>@deleted.invalid`,
so the address can register again and the row no longer identifies anyone; the password
hash is replaced by an unusable value, the wallet address dropped; every API key is revoked
(and its gateway record written revoked), every session (refresh token) revoked, every
webhook disabled, and a creator's active agents are taken off sale (inactive). Deleting an
already deleted account is a no-op.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from common.db import DbConnection
from common.domain import AdminRole, UserStatus
from common.errors import ApiError, ErrorCode
from common.validation import canonical_uuid
from control_plane import audit, gateway_sync
from control_plane.admin import repository
from control_plane.admin.schemas import (
    AdminAgent,
    AdminAgentPage,
    AdminAgentQuery,
    AdminCreatorInfo,
    AdminKeyCounts,
    AdminQuota,
    AdminUser,
    AdminUserDetail,
    AdminUserPage,
    AdminUserQuery,
    AgentStats,
    AgentStatusUpdate,
    AuditEntry,
    AuditPage,
    AuditQuery,
    CallStats,
    CallWindow,
    DashboardStats,
    UserDeleted,
    UserRateTierUpdate,
    UserStats,
    UserStatusUpdate,
)
from control_plane.auth.principal import Principal
from control_plane.auth.repository import revoke_user_families
from control_plane.gateway_sync import hold_write_through
from control_plane.rows import from_row
from control_plane.state import ControlPlaneState


def parse_id(raw: str, code: ErrorCode, message: str | None = None) -> str:
    """A path id as a canonical UUID string; anything else is simply not found."""
    canonical = canonical_uuid(raw)
    if canonical is None:
        raise ApiError(code, message)
    return canonical


# ------------------------------------------------------------------------------------------
# Dashboard
# ------------------------------------------------------------------------------------------


async def dashboard_stats(state: ControlPlaneState) -> DashboardStats:
    # One snapshot, so the numbers add up with each other.
    async with (
        state.db.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        users = await repository.user_counts(connection)
        agents = await repository.agent_counts(connection)
        totals = await repository.agent_totals(connection)
        windows = await repository.call_windows(connection)
        pending = await repository.pending_review_count(connection)
    by_type: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for row in users:
        by_type[row["user_type"]] = by_type.get(row["user_type"], 0) + row["n"]
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
    agents_by_status = {row["status"]: row["n"] for row in agents}
    return DashboardStats(
        users=UserStats(sum(by_type.values()), by_type, by_status),
        agents=AgentStats(sum(agents_by_status.values()), agents_by_status),
        calls=CallStats(
            last_24h=CallWindow(
                windows["calls_24h"], windows["billable_24h"], windows["revenue_24h"]
            ),
            last_30d=CallWindow(
                windows["calls_30d"], windows["billable_30d"], windows["revenue_30d"]
            ),
            all_time_calls=totals["calls"],
            all_time_revenue=totals["revenue"],
        ),
        pending_reviews=pending,
        generated_at=datetime.now(UTC),
    )


# ------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------


def user_out(row: asyncpg.Record) -> AdminUser:
    return from_row(AdminUser, row)


async def list_users(state: ControlPlaneState, query: AdminUserQuery) -> AdminUserPage:
    async with state.db.acquire() as connection:
        rows, total = await repository.list_users(
            connection, q=query.q, user_type=query.user_type, status=query.status,
            limit=query.page_size, offset=query.offset,
        )  # fmt: skip
    return AdminUserPage([user_out(row) for row in rows], query.page, query.page_size, total)


async def user_detail(state: ControlPlaneState, raw_id: str) -> AdminUserDetail:
    user_id = parse_id(raw_id, ErrorCode.USER_NOT_FOUND)
    async with state.db.acquire() as connection:
        row = await repository.user(connection, user_id)
        if row is None:
            raise ApiError(ErrorCode.USER_NOT_FOUND)
        keys = await repository.key_counts(connection, user_id)
        detail = AdminUserDetail(user_out(row), AdminKeyCounts(keys["active"], keys["revoked"]))
        quota = await repository.quota(connection, user_id)
        if quota is not None:
            remaining = quota["total_quota"] + quota["free_quota"] - quota["used_quota"]
            detail.quota = AdminQuota(
                quota["total_quota"], quota["used_quota"], quota["free_quota"], max(0, remaining)
            )
        profile = await repository.creator_profile(connection, user_id)
        if profile is not None:
            counts = await repository.creator_agent_counts(connection, user_id)
            detail.creator = AdminCreatorInfo(
                display_name=profile["display_name"], verified=profile["verified"],
                total_earnings=profile["total_earnings"],
                pending_earnings=profile["pending_earnings"],
                agents_by_status={item["status"]: item["n"] for item in counts},
            )  # fmt: skip
    return detail


def check_can_manage(actor_row: Any, target_row: Any) -> None:
    """The account rules of the module docstring, on freshly locked rows."""
    if actor_row is None or actor_row["status"] != UserStatus.ACTIVE:
        raise ApiError(ErrorCode.FORBIDDEN, "Your account is not active.")
    if str(actor_row["id"]) == str(target_row["id"]):
        raise ApiError(ErrorCode.FORBIDDEN, "Admins cannot change their own account.")
    if (
        target_row["admin_role"] == AdminRole.SUPER_ADMIN
        and actor_row["admin_role"] != AdminRole.SUPER_ADMIN
    ):
        raise ApiError(ErrorCode.FORBIDDEN, "Only a super_admin can change a super_admin.")


async def lock_pair(connection: DbConnection, actor: Principal, user_id: str) -> asyncpg.Record:
    """Lock the acting admin's row and the target's; check the account rules; the target."""
    if user_id == actor.user_id:
        raise ApiError(ErrorCode.FORBIDDEN, "Admins cannot change their own account.")
    rows = await repository.users_for_update(connection, [actor.user_id, user_id])
    target = rows.get(user_id)
    if target is None:
        raise ApiError(ErrorCode.USER_NOT_FOUND)
    check_can_manage(rows.get(actor.user_id), target)
    return target


async def set_user_status(
    state: ControlPlaneState, actor: Principal, raw_id: str, body: UserStatusUpdate,
    ip: str | None,
) -> AdminUser:  # fmt: skip
    user_id = parse_id(raw_id, ErrorCode.USER_NOT_FOUND)
    async with state.db.acquire() as connection, connection.transaction():
        target = await lock_pair(connection, actor, user_id)
        before = target["status"]
        if before == UserStatus.DELETED:
            raise ApiError(ErrorCode.CONFLICT, "A deleted account cannot change status.")
        await repository.set_user_status(connection, user_id, body.status)
        facts: dict[str, Any] = {}
        if body.status == "suspended" and before != UserStatus.SUSPENDED:
            # A suspension often answers a compromise: the sessions do not come back with
            # the account. Access tokens stop at once (they check the user record).
            facts["revoked_sessions"] = await revoke_user_families(connection, user_id)
        await audit.record_change(
            connection, actor=actor, action="user.status", target_type="user",
            target_id=user_id, before={"status": before}, after={"status": body.status},
            reason=body.reason, ip=ip, **facts,
        )  # fmt: skip
        await hold_write_through(connection)
        await gateway_sync.write_user(
            state.redis, shard=target["redis_shard"], user_id=user_id, status=body.status,
            tier=target["rate_tier"],
        )  # fmt: skip
        row = await repository.user(connection, user_id)
    assert row is not None
    return user_out(row)


async def set_user_rate_tier(
    state: ControlPlaneState, actor: Principal, raw_id: str, body: UserRateTierUpdate,
    ip: str | None,
) -> AdminUser:  # fmt: skip
    """The user's rate tier (free/paid limits per window); the gateway's very next admission
    uses it. A later payment event recomputes the tier from the payments that still stand
    (control_plane/payments), as it always has; the audit trail keeps both."""
    user_id = parse_id(raw_id, ErrorCode.USER_NOT_FOUND)
    async with state.db.acquire() as connection, connection.transaction():
        target = await lock_pair(connection, actor, user_id)
        if target["status"] == UserStatus.DELETED:
            raise ApiError(ErrorCode.CONFLICT, "A deleted account has no rate tier to change.")
        before = target["rate_tier"]
        await repository.set_user_rate_tier(connection, user_id, body.rate_tier)
        await audit.record_change(
            connection, actor=actor, action="user.rate_tier", target_type="user",
            target_id=user_id, before={"rate_tier": before}, after={"rate_tier": body.rate_tier},
            reason=body.reason, ip=ip,
        )  # fmt: skip
        await hold_write_through(connection)
        await gateway_sync.write_user(
            state.redis, shard=target["redis_shard"], user_id=user_id, status=target["status"],
            tier=body.rate_tier,
        )  # fmt: skip
        row = await repository.user(connection, user_id)
    assert row is not None
    return user_out(row)


async def delete_user(
    state: ControlPlaneState, actor: Principal, raw_id: str, ip: str | None
) -> UserDeleted:
    user_id = parse_id(raw_id, ErrorCode.USER_NOT_FOUND)
    async with state.db.acquire() as connection, connection.transaction():
        target = await lock_pair(connection, actor, user_id)
        if target["status"] == UserStatus.DELETED:
            return UserDeleted(user_id, "deleted", 0, 0, 0, 0)
        keys = await repository.revoke_api_keys(connection, user_id)
        sessions = await revoke_user_families(connection, user_id)
        webhooks = await repository.disable_webhooks(connection, user_id)
        agents = await repository.deactivate_creator_agents(connection, user_id)
        await repository.close_user(connection, user_id, f"deleted-{user_id}@deleted.invalid")
        # No email in the trail: erasing it is the point of the action.
        details = {
            "before": {"status": target["status"]}, "after": {"status": "deleted"},
            "user_type": target["user_type"], "revoked_api_keys": len(keys),
            "revoked_sessions": sessions, "disabled_webhooks": webhooks,
            "deactivated_agents": [str(agent["id"]) for agent in agents],
        }  # fmt: skip
        await audit.record(
            connection, actor=actor, action="user.delete", target_type="user",
            target_id=user_id, details=details, ip=ip,
        )  # fmt: skip
        await hold_write_through(connection)
        shard = target["redis_shard"]
        await gateway_sync.write_user(
            state.redis, shard=shard, user_id=user_id, status=UserStatus.DELETED,
            tier=target["rate_tier"],
        )  # fmt: skip
        for key in keys:
            await gateway_sync.write_api_key(
                state.redis, shard=shard, key_hash=key["key_hash"].strip(), user_id=user_id,
                key_id=str(key["id"]), revoked=True,
            )  # fmt: skip
        for agent in agents:
            await gateway_sync.write_agent(
                state.redis, str(agent["id"]), status=agent["status"], version=agent["version"],
                price_per_call=agent["price_per_call"], unit_price=state.settings.unit_price,
            )  # fmt: skip
    return UserDeleted(user_id, "deleted", len(keys), sessions, len(agents), webhooks)


# ------------------------------------------------------------------------------------------
# Agents
# ------------------------------------------------------------------------------------------


def _agent_out(row: asyncpg.Record, *, detail: bool = False) -> AdminAgent:
    return from_row(AdminAgent, row, description=row["description"] if detail else None)


async def list_agents(state: ControlPlaneState, query: AdminAgentQuery) -> AdminAgentPage:
    creator_id = str(query.creator_id) if query.creator_id else None
    async with state.db.acquire() as connection:
        rows, total = await repository.list_agents(
            connection, q=query.q, status=query.status, creator_id=creator_id,
            limit=query.page_size, offset=query.offset,
        )  # fmt: skip
    return AdminAgentPage([_agent_out(row) for row in rows], query.page, query.page_size, total)


async def agent_detail(state: ControlPlaneState, raw_id: str) -> AdminAgent:
    agent_id = parse_id(raw_id, ErrorCode.AGENT_NOT_FOUND, "The agent does not exist.")
    async with state.db.acquire() as connection:
        row = await repository.agent(connection, agent_id)
    if row is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent does not exist.")
    return _agent_out(row, detail=True)


async def set_agent_status(
    state: ControlPlaneState, actor: Principal, raw_id: str, body: AgentStatusUpdate,
    ip: str | None,
) -> AdminAgent:  # fmt: skip
    agent_id = parse_id(raw_id, ErrorCode.AGENT_NOT_FOUND, "The agent does not exist.")
    async with state.db.acquire() as connection, connection.transaction():
        row = await repository.agent(connection, agent_id, for_update=True)
        if row is None:
            raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent does not exist.")
        updated = await repository.set_agent_status(connection, agent_id, body.status)
        await audit.record_change(
            connection, actor=actor, action="agent.status", target_type="agent",
            target_id=agent_id, before={"status": row["status"]}, after={"status": body.status},
            reason=body.reason, ip=ip, creator_id=str(row["creator_id"]),
            version=updated["version"],
        )  # fmt: skip
        await hold_write_through(connection)
        await gateway_sync.write_agent(
            state.redis, agent_id, status=updated["status"], version=updated["version"],
            price_per_call=updated["price_per_call"], unit_price=state.settings.unit_price,
        )  # fmt: skip
        fresh = await repository.agent(connection, agent_id)
    assert fresh is not None
    return _agent_out(fresh, detail=True)


# ------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------


async def audit_log(state: ControlPlaneState, query: AuditQuery) -> AuditPage:
    async with state.db.acquire() as connection:
        rows = await repository.audit_entries(
            connection, actor_id=str(query.actor_id) if query.actor_id else None,
            action=query.action, target_type=query.target_type, target_id=query.target_id,
            before=query.before, limit=query.limit,
        )  # fmt: skip
    items = [
        AuditEntry(
            id=row["id"],
            actor_id=str(row["actor_id"]) if row["actor_id"] else None,
            actor_role=row["actor_role"],
            action=row["action"],
            target_type=row["target_type"],
            target_id=row["target_id"],
            details=row["details"],
            ip=row["ip"],
            created_at=row["created_at"],
        )
        for row in rows
    ]
    next_before = items[-1].id if len(items) == query.limit else None
    return AuditPage(items, next_before)
