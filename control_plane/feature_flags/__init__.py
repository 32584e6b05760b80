"""Feature flags: Postgres `feature_flags` is the truth, Redis `ff:all` a short-lived cache.

Use at run time: `await feature_flags.is_enabled(state, Flag.ENABLE_WEBHOOKS)`.
"""

from control_plane.feature_flags.service import Flag, UnknownFlagError, is_enabled

__all__ = ["Flag", "UnknownFlagError", "is_enabled"]
