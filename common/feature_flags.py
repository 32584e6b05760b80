"""Feature flags as a per-request reader sees them: a frozen snapshot, refreshed off the
request path.

Postgres `feature_flags` is the truth; Redis `ff:all` is the control plane's write-through
cache of it (control_plane/feature_flags: an admin's change is in Redis before it commits). A
process that consults flags on every request (the gateway's maintenance gate and trial mode,
the control plane's read-only gate) holds one `FeatureFlags`, built in its lifespan:
`flags.current` is a `FlagSnapshot` (an attribute read per request, nothing else), and
`flags.run()` replaces it every `FEATURE_FLAGS_REFRESH_S` seconds with one HGETALL of
`ff:all`; only when that hash has expired does it read Postgres (and refill the hash the way
the control plane does: HSETNX, EXPIRE NX, so it never overwrites a newer change).

Flags fail static: a refresh that cannot reach Redis or Postgres keeps the last snapshot, so a
storage blip neither starts nor ends maintenance. Before the first refresh the snapshot holds
the defaults the seed migration ships (maintenance off, trials and retrieval on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import asyncpg
from redis.exceptions import RedisError

from common import keyspace
from common.redis_store import RedisClient

logger = logging.getLogger("agentlink.feature_flags")

# How long a hash the refresher filled from Postgres lives (the control plane's CACHE_TTL_S).
_FILL_TTL_S = 30
_STOP_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class FlagSnapshot:
    """The flags a request path reads. A flag missing from storage keeps its default."""

    maintenance_mode: bool = False
    enable_trial_mode: bool = True
    enable_rag: bool = True

    @classmethod
    def of(cls, flags: Mapping[str, bool]) -> FlagSnapshot:
        defaults = cls()
        return cls(
            maintenance_mode=flags.get("maintenance_mode", defaults.maintenance_mode),
            enable_trial_mode=flags.get("enable_trial_mode", defaults.enable_trial_mode),
            enable_rag=flags.get("enable_rag", defaults.enable_rag),
        )


def _decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, bool]:
    def text(value: bytes | str) -> str:
        return value.decode() if isinstance(value, bytes) else value

    return {text(key): text(value) == "1" for key, value in raw.items()}


class FeatureFlags:
    """The current snapshot and its refresher (one per process, from its lifespan)."""

    def __init__(self, redis: RedisClient, db: asyncpg.Pool, *, refresh_s: float) -> None:
        self._redis = redis
        self._db = db
        self._refresh_s = refresh_s
        self.current = FlagSnapshot()

    async def refresh(self) -> bool:
        """Read the flags now; False (snapshot kept) when neither Redis nor Postgres answered."""
        try:
            raw = await self._redis.hgetall(keyspace.FEATURE_FLAGS)
        except RedisError:
            raw = None
        if raw:
            self.current = FlagSnapshot.of(_decode(raw))
            return True
        try:
            rows = await self._db.fetch("SELECT key, enabled FROM feature_flags")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        flags = {row["key"]: bool(row["enabled"]) for row in rows}
        self.current = FlagSnapshot.of(flags)
        if raw is not None and flags:  # Redis answered, the hash had expired: refill it
            with contextlib.suppress(RedisError):
                async with self._redis.pipeline(transaction=True) as pipe:
                    for key, enabled in flags.items():
                        pipe.hsetnx(keyspace.FEATURE_FLAGS, key, "1" if enabled else "0")
                    pipe.expire(keyspace.FEATURE_FLAGS, _FILL_TTL_S, nx=True)
                    await pipe.execute()
        return True

    async def run(self) -> None:
        """Refresh forever (cancel to stop); a failed refresh is retried on the next tick."""
        task = asyncio.current_task()
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception:  # never let the refresher die: the snapshot would freeze
                logger.exception("feature flag refresh failed")
            # redis-py's asyncio client can swallow a cancellation that arrives during a
            # command (the command returns as if nothing happened; redis/redis-py#2028,
            # #2551), and the loop would refresh on forever: every gateway worker then sat
            # out its whole stop timeout at shutdown. The task still says it is being
            # cancelled, so honour that here.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FeatureFlags]:
        """First refresh now (best effort), then the refresher in the background."""
        await self.refresh()
        task = asyncio.create_task(self.run(), name="feature-flags-refresh")
        try:
            yield self
        finally:
            task.cancel()
            # Bounded: a refresh stuck in a Redis write must not hold up the process's shutdown.
            _, stuck = await asyncio.wait({task}, timeout=_STOP_TIMEOUT_S)
            if stuck:
                logger.warning("feature flag refresher did not stop within %d s", _STOP_TIMEOUT_S)
