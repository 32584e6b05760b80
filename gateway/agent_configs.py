"""Decrypted agent configs, cached in process memory by (agent id, version).

Admission returns the agent's current version with every call, so a cached entry is current
exactly when its version matches: no invalidation protocol, no TTL. The plaintext prompt
lives only here, never in Redis, logs, traces, metrics or responses.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg

from common.db import UNAVAILABLE_ERRORS
from common.domain import AgentConfig
from common.errors import ApiError, ErrorCode
from crypto.envelope import KeyRing
from gateway.leak_guard import LeakGuard, plant_canary, version_canary
from gateway.leak_guard.canary import CANARY_PURPOSE
from gateway.single_flight import SingleFlight

# The control plane writes the agent's Redis record just before its Postgres commit, so for
# a few milliseconds admission can name a version Postgres does not show yet.
_MISSING_VERSION_RETRIES = (0.005, 0.02, 0.05)


@dataclass(frozen=True, slots=True)
class CachedAgent:
    config: AgentConfig
    guard: LeakGuard | None  # built once per version; None when the creator turned it off
    # The version's leak-guard canary, and the system prompt framed by it as sent upstream:
    # the same bytes on every call, so the provider's prompt cache can hit.
    canary: str
    planted_prompt: str


class AgentConfigCache:
    def __init__(self, db: asyncpg.Pool, keyring: KeyRing, *, max_entries: int = 10_000) -> None:
        self._db = db
        self._keyring = keyring
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], CachedAgent] = OrderedDict()
        self._flights: SingleFlight[CachedAgent] = SingleFlight()
        self.loads = 0

    async def get(self, agent_id: str, version: int) -> CachedAgent:
        key = (agent_id, version)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached
        return await self._flights.run(
            f"{agent_id}:{version}", lambda: self._load(agent_id, version)
        )

    async def _load(self, agent_id: str, version: int) -> CachedAgent:
        self.loads += 1
        envelope = await self._fetch(agent_id, version)
        for delay in _MISSING_VERSION_RETRIES:
            if envelope is not None:
                break
            await asyncio.sleep(delay)
            envelope = await self._fetch(agent_id, version)
        if envelope is None:
            raise ApiError(
                ErrorCode.STORAGE_UNAVAILABLE, "The agent is being updated; try again shortly."
            )
        plaintext = self._keyring.decrypt(envelope, agent_id=agent_id, version=version)
        config = AgentConfig.from_json(plaintext)
        guard = LeakGuard(config.system_prompt) if config.leak_guard else None
        canary = version_canary(
            self._keyring.version_secret(
                envelope, purpose=CANARY_PURPOSE, agent_id=agent_id, version=version
            )
        )
        loaded = CachedAgent(config, guard, canary, plant_canary(config.system_prompt, canary))
        self._entries[(agent_id, version)] = loaded
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return loaded

    async def _fetch(self, agent_id: str, version: int) -> bytes | None:
        try:
            envelope: bytes | None = await self._db.fetchval(
                "SELECT config_encrypted FROM agent_versions WHERE agent_id = $1 AND version = $2",
                agent_id,
                version,
            )
        except UNAVAILABLE_ERRORS as error:
            # Postgres down: the call was admitted (Redis) but cannot be served; a clear 503
            # (the commit gives the admission back), not an unhandled 500.
            raise ApiError(
                ErrorCode.STORAGE_UNAVAILABLE, "The agent's configuration is unavailable."
            ) from error
        return envelope
