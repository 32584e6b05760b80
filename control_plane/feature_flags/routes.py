"""Feature-flag admin routes: path → handler (system:admin only)."""

from __future__ import annotations

from control_plane.api import ApiRoute, Context
from control_plane.auth.principal import Permission, UserType
from control_plane.feature_flags import service
from control_plane.feature_flags.schemas import FeatureFlagList, FeatureFlagOut, FeatureFlagUpdate


async def list_feature_flags(context: Context) -> FeatureFlagList:
    return FeatureFlagList(await service.list_flags(context.state))


async def update_feature_flag(context: Context, body: FeatureFlagUpdate) -> FeatureFlagOut:
    return await service.set_flag(
        context.state, context.user, context.path["key"], body.enabled, context.client_ip
    )


PREFIX = "/api/v1/admin/feature-flags"
_ADMINS = frozenset({UserType.ADMIN})
ROUTES = [
    ApiRoute("GET", PREFIX, list_feature_flags, "List feature flags",
             response=FeatureFlagList, user_types=_ADMINS, permission=Permission.SYSTEM_ADMIN,
             tags=("admin",)),
    ApiRoute("PUT", f"{PREFIX}/{{key}}", update_feature_flag, "Turn a feature flag on or off",
             body=FeatureFlagUpdate, response=FeatureFlagOut, user_types=_ADMINS,
             permission=Permission.SYSTEM_ADMIN, tags=("admin",)),
]  # fmt: skip
