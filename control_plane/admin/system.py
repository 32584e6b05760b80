"""System operations: the health report and clearing the gateway's rebuildable records.

Cache clear deletes only records the gateway rebuilds from Postgres on its next MISS: API-key
records `ak:*`, user records `usr:*` and agent records `agent:*` (common/keyspace.py). It
never touches live state that exists only in Redis until the worker folds it back: quota
balances, trial counters, rate windows, reservations and usage streams.

One race needs care. Write-through (gateway_sync) writes a record inside a Postgres
transaction before it commits. A clear that deletes that record between the write and the
commit would let a gateway reload the *old* committed row and cache it for the record TTL
(a suspended user working again for a day). So every admin write-through first takes a
shared transaction-level advisory lock (`hold_write_through`) and the clear takes it
exclusively for its duration: it waits for in-flight write-throughs to commit, and new ones
wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from common import keyspace
from common.errors import ApiError, ErrorCode
from common.migrations import MigrationError, default_directory, load_migrations
from control_plane import audit
from control_plane.admin import repository
from control_plane.admin.schemas import CacheCleared, HealthCheck, SystemHealth
from control_plane.auth.principal import Principal
from control_plane.gateway_sync import WRITE_THROUGH_LOCK
from control_plane.state import ControlPlaneState

logger = logging.getLogger("agentlink.admin")

# What a cache clear may delete, by pattern; reported under these names.
CLEARABLE_RECORDS: dict[str, str] = keyspace.RECORD_PATTERNS
SCAN_BATCH = 1000
CLEAR_LOCK_TIMEOUT = "10s"
CHECK_TIMEOUT_S = 3.0
# A usage backlog above this many events (summed over all shards) is reported as degraded:
# the worker is behind or down.
BACKLOG_DEGRADED = 100_000

Status = Literal["ok", "degraded", "unavailable"]


# ------------------------------------------------------------------------------------------
# Cache clear
# ------------------------------------------------------------------------------------------


async def _delete_matching(state: ControlPlaneState, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    async for name in state.redis.scan_iter(match=pattern, count=SCAN_BATCH):
        batch.append(name)
        if len(batch) >= SCAN_BATCH:
            deleted += await state.redis.unlink(*batch)
            batch = []
    if batch:
        deleted += await state.redis.unlink(*batch)
    return deleted


async def clear_cache(state: ControlPlaneState, actor: Principal, ip: str | None) -> CacheCleared:
    deleted: dict[str, int] = {}
    async with state.db.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{CLEAR_LOCK_TIMEOUT}'")
        try:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", WRITE_THROUGH_LOCK)
        except asyncpg.LockNotAvailableError:
            raise ApiError(
                ErrorCode.STORAGE_UNAVAILABLE, "Records are being written; try again shortly."
            ) from None
        try:
            for kind, pattern in CLEARABLE_RECORDS.items():
                deleted[kind] = await _delete_matching(state, pattern)
        except RedisError:
            raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        await audit.record(
            connection, actor=actor, action="system.cache_clear", target_type="system",
            target_id="cache", details={"deleted": deleted}, ip=ip,
        )  # fmt: skip
    return CacheCleared(deleted=deleted, total=sum(deleted.values()))


# ------------------------------------------------------------------------------------------
# Health
# ------------------------------------------------------------------------------------------


async def _timed(check: Callable[[], Awaitable[HealthCheck]]) -> HealthCheck:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            result = await check()
    except Exception as error:  # a health report reports; it does not fail
        logger.warning("health check failed", exc_info=error)
        result = HealthCheck("unavailable", details={"error": type(error).__name__})
    result.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return result


async def _postgres(state: ControlPlaneState) -> HealthCheck:
    async with state.db.acquire() as connection:
        version = await connection.fetchval("SHOW server_version")
    details = {"server_version": version, "pool_size": state.db.get_size(),
               "pool_idle": state.db.get_idle_size()}  # fmt: skip
    return HealthCheck("ok", details=details)


async def _migrations(state: ControlPlaneState) -> HealthCheck:
    async with state.db.acquire() as connection:
        applied = await repository.applied_migrations(connection)
    details: dict[str, Any] = {
        "applied": len(applied),
        "latest": f"{applied[-1]['version']:04d}_{applied[-1]['name']}" if applied else None,
    }
    try:
        on_disk = load_migrations(default_directory())
    except (MigrationError, OSError):
        details["files"] = "unreadable"
        return HealthCheck("degraded", details=details)
    checksums = {row["version"]: row["checksum"] for row in applied}
    pending = [f"{m.version:04d}_{m.name}" for m in on_disk if m.version not in checksums]
    changed = [f"{m.version:04d}_{m.name}" for m in on_disk
               if m.version in checksums and checksums[m.version] != m.checksum]  # fmt: skip
    details.update(pending=pending, changed=changed)
    return HealthCheck("ok" if not pending and not changed else "degraded", details=details)


async def _redis(state: ControlPlaneState) -> HealthCheck:
    await state.redis.ping()
    if isinstance(state.redis, RedisCluster):  # every primary's, not one node's
        by_node = await state.redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
        infos = list(by_node.values())
    else:
        infos = [await state.redis.info("memory")]
    policies = {info.get("maxmemory_policy") for info in infos}
    details = {
        "used_memory": sum(int(info.get("used_memory") or 0) for info in infos),
        "maxmemory_policy": policies.pop() if len(policies) == 1 else "mixed",
        "primaries": len(infos),
    }
    # Quota and trial counters live only in Redis until folded back: eviction would lose them.
    evicting = any(info.get("maxmemory_policy") not in (None, "noeviction") for info in infos)
    return HealthCheck("degraded" if evicting else "ok", details=details)


async def _usage_backlog(state: ControlPlaneState) -> HealthCheck:
    streams = keyspace.all_usage_streams()
    async with state.redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
        pipe.xlen(keyspace.USAGE_DEAD_LETTER_STREAM)
        lengths: list[int] = await pipe.execute()
    backlog, dead = sum(lengths[:-1]), lengths[-1]
    busiest = max(range(len(streams)), key=lambda shard: lengths[shard])
    details = {"events": backlog, "streams": len(streams), "busiest_shard": busiest,
               "busiest_shard_events": lengths[busiest], "dead_lettered": dead}  # fmt: skip
    return HealthCheck("ok" if backlog < BACKLOG_DEGRADED else "degraded", details=details)


def _overall(checks: list[HealthCheck]) -> Status:
    if any(check.status == "unavailable" for check in checks):
        return "unavailable"
    if any(check.status == "degraded" for check in checks):
        return "degraded"
    return "ok"


async def health(state: ControlPlaneState) -> SystemHealth:
    postgres, migrations, redis, backlog = await asyncio.gather(
        _timed(lambda: _postgres(state)),
        _timed(lambda: _migrations(state)),
        _timed(lambda: _redis(state)),
        _timed(lambda: _usage_backlog(state)),
    )
    return SystemHealth(
        status=_overall([postgres, migrations, redis, backlog]),
        postgres=postgres,
        migrations=migrations,
        redis=redis,
        usage_backlog=backlog,
        checked_at=datetime.now(UTC),
    )
