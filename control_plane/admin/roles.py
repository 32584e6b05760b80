"""Changing a user's type or admin role (PUT /api/v1/admin/users/{id}/role).

One transaction locks the acting admin and the target (the account rules of
admin/service.py: never one's own account, a super_admin only by a super_admin), changes the
role through `auth.sessions.change_role` — which bumps the token generation and writes the
user's Redis record through before commit, so every access token the user holds stops at the
next request, on every instance, and the record never shows the old role — and appends the
audit row. Granting super_admin also needs a super_admin.

What a type change may not break: a creator who owns agents stays a creator (their agents,
earnings and settlements need one), and only a user with a creator profile (one who
registered as a creator) can become one again. Setting the role a user already has changes
nothing: no new generation, no audit row.
"""

from __future__ import annotations

from typing import Any

from common.domain import AdminRole, UserStatus, UserType
from common.errors import ApiError, ErrorCode
from control_plane import audit
from control_plane.admin import repository
from control_plane.admin.schemas import (
    AdminRoleGrant,
    AdminUser,
    CreatorRole,
    DeveloperRole,
    UserRoleUpdate,
)
from control_plane.admin.service import lock_pair, parse_id, user_out
from control_plane.auth import sessions
from control_plane.auth.principal import Principal
from control_plane.state import ControlPlaneState

_TYPE_OF = {
    CreatorRole: UserType.CREATOR, DeveloperRole: UserType.DEVELOPER,
    AdminRoleGrant: UserType.ADMIN,
}  # fmt: skip


async def change_user_role(
    state: ControlPlaneState, actor: Principal, raw_id: str, body: UserRoleUpdate,
    ip: str | None,
) -> AdminUser:  # fmt: skip
    user_id = parse_id(raw_id, ErrorCode.USER_NOT_FOUND)
    user_type = _TYPE_OF[type(body)]
    admin_role = AdminRole(body.admin_role) if isinstance(body, AdminRoleGrant) else None
    async with state.db.acquire() as connection, connection.transaction():
        target = await lock_pair(connection, actor, user_id)
        if admin_role == AdminRole.SUPER_ADMIN and actor.admin_role != AdminRole.SUPER_ADMIN:
            raise ApiError(ErrorCode.FORBIDDEN, "Only a super_admin can grant super_admin.")
        if target["status"] == UserStatus.DELETED:
            raise ApiError(ErrorCode.CONFLICT, "A deleted account has no role to change.")
        before = {"user_type": target["user_type"], "admin_role": target["admin_role"]}
        after = {"user_type": user_type.value, "admin_role": admin_role}
        if before != after:
            await _check_type_change(connection, user_id, before["user_type"], user_type)
            changed = await sessions.change_role(
                connection, state.redis, user_id, user_type=user_type, admin_role=admin_role
            )
            assert changed, "the row is locked"
            await audit.record_change(
                connection, actor=actor, action="user.role", target_type="user",
                target_id=user_id, before=before, after=after, reason=body.reason, ip=ip,
            )  # fmt: skip
        row = await repository.user(connection, user_id)
    assert row is not None
    return user_out(row)


async def _check_type_change(connection: Any, user_id: str, before: str, after: UserType) -> None:
    if before == after:
        return
    if before == UserType.CREATOR and await repository.creator_agent_counts(connection, user_id):
        raise ApiError(ErrorCode.CONFLICT, "A creator who owns agents stays a creator.")
    if after == UserType.CREATOR and await repository.creator_profile(connection, user_id) is None:
        raise ApiError(
            ErrorCode.CONFLICT, "Only a user who registered as a creator can become one."
        )
