"""Feature flags: read at run time from Redis, changed by admins in Postgres with write-through.

Redis `ff:all` is a hash `flag key -> "1" | "0"` with a short TTL (`CACHE_TTL_S`):

- `is_enabled` asks Redis first (one HGET). On a miss (hash expired, or Redis unreachable) it
  reads every flag from Postgres and fills the hash with HSETNX, so a reader that raced a
  change can never overwrite the newer value the change wrote; the TTL is set only when the
  hash has none (EXPIRE NX), so fills never extend the life of an entry.
- `set_flag` updates Postgres and writes the new value to Redis inside the same transaction,
  before commit: the change is visible to every process on its next check. If the
  transaction fails after the Redis write, the field is dropped again (best effort), and the
  TTL bounds how long any leftover could disagree with Postgres.

The TTL is only a safety net for changes made outside the API (an operator's SQL).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from enum import StrEnum

import asyncpg
from redis.exceptions import RedisError

from common import keyspace
from common.errors import ApiError, ErrorCode
from control_plane import audit
from control_plane.auth.principal import Principal
from control_plane.feature_flags import repository
from control_plane.feature_flags.schemas import FeatureFlagOut
from control_plane.state import ControlPlaneState

CACHE_KEY = keyspace.FEATURE_FLAGS
CACHE_TTL_S = 30


class Flag(StrEnum):
    """The seed's flags (migrations/0001). A flag added by a later migration works by name
    too; naming it here gives callers a typo-proof constant."""

    ENABLE_CRYPTO_PAYMENTS = "enable_crypto_payments"
    ENABLE_BLOCKCHAIN_MINT = "enable_blockchain_mint"
    ENABLE_RAG = "enable_rag"
    ENABLE_WEBHOOKS = "enable_webhooks"
    ENABLE_TRIAL_MODE = "enable_trial_mode"
    MAINTENANCE_MODE = "maintenance_mode"


class UnknownFlagError(ApiError):
    def __init__(self, key: str) -> None:
        super().__init__(
            ErrorCode.RESOURCE_NOT_FOUND, "Unknown feature flag.", details={"key": key}
        )


def _out(row: asyncpg.Record) -> FeatureFlagOut:
    updated_by = row["updated_by"]
    return FeatureFlagOut(
        key=row["key"],
        enabled=row["enabled"],
        description=row["description"],
        updated_by=str(updated_by) if updated_by is not None else None,
        updated_at=row["updated_at"],
    )


async def _fill_cache(state: ControlPlaneState, flags: Mapping[str, bool]) -> None:
    if not flags:
        return
    try:
        async with state.redis.pipeline(transaction=True) as pipe:
            for key, enabled in flags.items():
                pipe.hsetnx(CACHE_KEY, key, "1" if enabled else "0")
            pipe.expire(CACHE_KEY, CACHE_TTL_S, nx=True)
            await pipe.execute()
    except RedisError:
        pass  # the cache is an optimisation; Postgres answered


async def load_flags(state: ControlPlaneState) -> dict[str, bool]:
    """Every flag from Postgres (the truth), refilling the Redis cache."""
    async with state.db.acquire() as connection:
        rows = await repository.all_flags(connection)
    flags = {row["key"]: bool(row["enabled"]) for row in rows}
    await _fill_cache(state, flags)
    return flags


async def is_enabled(state: ControlPlaneState, key: str) -> bool:
    """Whether the flag is on: Redis first, Postgres on a miss. Unknown flag: UnknownFlagError
    (a 404 if it escapes to a handler, but it is a programming error: use `Flag`)."""
    try:
        cached = await state.redis.hget(CACHE_KEY, key)
    except RedisError:
        cached = None
    if cached is not None:
        return cached in (b"1", "1")
    flags = await load_flags(state)
    if key not in flags:
        raise UnknownFlagError(key)
    return flags[key]


async def list_flags(state: ControlPlaneState) -> list[FeatureFlagOut]:
    async with state.db.acquire() as connection:
        return [_out(row) for row in await repository.all_flags(connection)]


async def set_flag(
    state: ControlPlaneState, actor: Principal, key: str, enabled: bool, ip: str | None
) -> FeatureFlagOut:
    try:
        async with state.db.acquire() as connection, connection.transaction():
            before = await repository.flag_for_update(connection, key)
            if before is None:
                raise UnknownFlagError(key)
            row = await repository.set_enabled(
                connection, key, enabled=enabled, updated_by=actor.user_id
            )
            await audit.record(
                connection, actor=actor, action="feature_flag.update",
                target_type="feature_flag", target_id=key,
                details={"before": {"enabled": before["enabled"]}, "after": {"enabled": enabled}},
                ip=ip,
            )  # fmt: skip
            # Last before commit: once Redis has it, every reader sees it.
            try:
                async with state.redis.pipeline(transaction=True) as pipe:
                    pipe.hset(CACHE_KEY, key, "1" if enabled else "0")
                    pipe.expire(CACHE_KEY, CACHE_TTL_S, nx=True)
                    await pipe.execute()
            except RedisError:
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
    except UnknownFlagError:
        raise
    except Exception:
        # The change did not commit (or we cannot tell): forget what we may have cached.
        with contextlib.suppress(RedisError):  # else the TTL expires it
            await state.redis.hdel(CACHE_KEY, key)
        raise
    if state.flags is not None:  # this process follows its own change at once
        await state.flags.refresh()
    return _out(row)
