"""Everything the gateway builds once at start-up and hands to its handlers."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from common.feature_flags import FeatureFlags
from common.redis_store import LuaScripts, RedisClient
from gateway.admission import Admitter
from gateway.agent_configs import AgentConfigCache
from gateway.api_keys import KeyGate
from gateway.client_usage import CallCosts
from gateway.drain import Drain
from gateway.knowledge import KnowledgeRetriever
from gateway.metrics import GatewayMetrics
from gateway.provider_call import GuardedProvider
from gateway.records import RecordLoader
from gateway.settings import GatewaySettings
from gateway.settlement import Settler
from gateway.timers import Timers
from gateway.tracing import Tracing


@dataclass(slots=True)
class GatewayState:
    settings: GatewaySettings
    redis: RedisClient  # a RedisCluster's with REDIS_CLUSTER
    db: asyncpg.Pool
    scripts: LuaScripts
    metrics: GatewayMetrics
    api_keys: KeyGate  # step 1: forged keys refused before any lookup
    records: RecordLoader
    admitter: Admitter
    settler: Settler  # step 7, with retries through a Redis blip
    agent_configs: AgentConfigCache
    providers: dict[str, GuardedProvider]  # each behind its breaker, with its timeouts
    tracing: Tracing
    knowledge: KnowledgeRetriever  # step 4 for agents with a knowledge base
    flags: FeatureFlags  # maintenance_mode, enable_trial_mode, enable_rag: snapshot, off-path
    drain: Drain  # after SIGTERM: unready, streams cut at SHUTDOWN_DRAIN_S, commits awaited
    costs: CallCosts  # what a call's units cost, at settings.unit_price
    timers: Timers  # the per-call deadlines and watches, on one loop timer
