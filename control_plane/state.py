"""Everything the control plane builds once at start-up and hands to its handlers."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from control_plane.settings import ControlPlaneSettings


@dataclass(slots=True)
class ControlPlaneState:
    settings: ControlPlaneSettings
    db: asyncpg.Pool
    redis: redis_asyncio.Redis
    registry: CollectorRegistry
