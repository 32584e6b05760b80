"""What the dashboard builds once at start-up (in the app's lifespan) for its handlers."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import jinja2

from control_plane.dashboard.settings import DashboardSettings


@dataclass(frozen=True, slots=True)
class DashboardState:
    settings: DashboardSettings
    templates: jinja2.Environment
    csrf_key: bytes
    # One long-lived client to the gateway, for the playground's calls.
    gateway: httpx.AsyncClient
