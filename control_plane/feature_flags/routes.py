"""Feature-flag admin routes: path → handler (system:admin only)."""

from __future__ import annotations

from control_plane.api import Context, RouteGroup
from control_plane.auth.principal import Permission, UserType
from control_plane.feature_flags import service
from control_plane.feature_flags.schemas import FeatureFlagList, FeatureFlagOut, FeatureFlagUpdate


async def list_feature_flags(context: Context) -> FeatureFlagList:
    return FeatureFlagList(await service.list_flags(context.state))


async def update_feature_flag(context: Context, body: FeatureFlagUpdate) -> FeatureFlagOut:
    return await service.set_flag(
        context.state, context.user, context.path["key"], body.enabled, context.client_ip
    )


_ADMIN = RouteGroup("/api/v1/admin/feature-flags", frozenset({UserType.ADMIN}), "admin")
ROUTES = [
    _ADMIN.route("GET", "", list_feature_flags, "List feature flags",
                 response=FeatureFlagList, permission=Permission.SYSTEM_ADMIN),
    _ADMIN.route("PUT", "/{key}", update_feature_flag, "Turn a feature flag on or off",
                 body=FeatureFlagUpdate, response=FeatureFlagOut,
                 permission=Permission.SYSTEM_ADMIN),
]  # fmt: skip
