"""Request and response bodies of the feature-flag routes."""

from __future__ import annotations

from datetime import datetime

import msgspec


class FeatureFlagOut(msgspec.Struct):
    key: str
    enabled: bool
    description: str
    updated_by: str | None
    updated_at: datetime


class FeatureFlagList(msgspec.Struct):
    items: list[FeatureFlagOut]


class FeatureFlagUpdate(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
