"""Everything the gateway builds once at start-up and hands to its handlers."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from common.redis_store import LuaScripts
from gateway.settings import GatewaySettings


@dataclass(slots=True)
class GatewayState:
    settings: GatewaySettings
    redis: redis_asyncio.Redis
    scripts: LuaScripts
    registry: CollectorRegistry
