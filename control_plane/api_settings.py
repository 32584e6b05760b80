"""Deprecated: the HTTP API's settings are `control_plane.settings.ApiSettings`."""

from __future__ import annotations

from control_plane.settings import ApiSettings

__all__ = ["ApiSettings"]
