"""Who is calling, and what they may do: the seed's RBAC model.

Creators and developers act on their own resources (ownership is checked by each service).
Admins act on the platform, with permissions by admin role, exactly the seed's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.domain import AdminRole, UserType

__all__ = ["ROLE_PERMISSIONS", "AdminRole", "Permission", "Principal", "UserType"]


class Permission(StrEnum):
    VIEW_USERS = "users:view"
    MANAGE_USERS = "users:manage"
    VIEW_AGENTS = "agents:view"
    MANAGE_AGENTS = "agents:manage"
    MODERATE_CONTENT = "content:moderate"
    MANAGE_PAYMENTS = "payments:manage"
    SYSTEM_ADMIN = "system:admin"


ROLE_PERMISSIONS: dict[AdminRole, frozenset[Permission]] = {
    AdminRole.SUPER_ADMIN: frozenset(Permission),
    AdminRole.MODERATOR: frozenset(
        {Permission.VIEW_USERS, Permission.VIEW_AGENTS, Permission.MODERATE_CONTENT}
    ),
    AdminRole.SUPPORT: frozenset({Permission.VIEW_USERS, Permission.VIEW_AGENTS}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    user_type: UserType
    admin_role: AdminRole | None
    shard: int
    token_generation: int = 0  # users.token_generation when the token was issued

    def can(self, permission: Permission) -> bool:
        if self.user_type is not UserType.ADMIN or self.admin_role is None:
            return False
        return permission in ROLE_PERMISSIONS[self.admin_role]
