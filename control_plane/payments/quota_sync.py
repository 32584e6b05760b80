"""The Redis side of a quota adjustment, safe to repeat: after the Postgres transaction that
wrote `quota_adjustments` rows commits, each row is applied to the live balance once
(`common/lua/adjust_quota.lua`), the user's gateway record is written through (tier), and the
rows are marked synced. Run right after a credit or refund, and by the worker's reconciler for
anything a Redis outage or a crash left behind: the quota comes out right, once.

A balance Redis does not hold yet is loaded from Postgres first (`load_quota.lua`, with the
snapshot's adjust_seq), exactly as the gateway's cold load would; whichever load wins, the
seq tells the script whether the adjustment is already in it.

A take-back can find less left in Redis than Postgres knew (calls not yet ingested): Redis
stops at zero and the difference is given back to `quotas.total_quota` and counted in the
payment's `lost_units`, so Postgres and Redis agree again once usage is ingested.
"""

from __future__ import annotations

import logging

import asyncpg
from redis.exceptions import RedisError

from common import keyspace
from common.db import DbConnection
from common.errors import ApiError
from common.redis_store import LuaScripts, RedisClient
from control_plane import gateway_sync
from control_plane.gateway_sync import hold_write_through
from control_plane.payments import repository

logger = logging.getLogger("agentlink.payments")
_ABSENT = frozenset({b"ABSENT", "ABSENT"})


class QuotaSyncError(RuntimeError):
    """Redis could not be brought up to date now; the reconciler will retry."""


async def _apply(
    connection: DbConnection, redis: RedisClient,
    scripts: LuaScripts, *, shard: int, user_id: str, adjustment: asyncpg.Record,
) -> int:  # fmt: skip
    keys = [keyspace.quota(shard, user_id), keyspace.quota_adjustments(shard, user_id)]
    args = [str(adjustment["id"]), adjustment["seq"], adjustment["planned"]]
    status, applied = await scripts["adjust_quota"](keys=keys, args=args, client=redis)
    if status in _ABSENT:
        snapshot = await repository.quota_snapshot(connection, user_id)
        balance, seq = (snapshot["balance"], snapshot["adjust_seq"]) if snapshot else (0, 0)
        await scripts["load_quota"](keys=keys, args=[balance, seq], client=redis)
        status, applied = await scripts["adjust_quota"](keys=keys, args=args, client=redis)
        if status in _ABSENT:
            raise QuotaSyncError("the balance vanished while it was being loaded")
    return int(applied)


async def sync_user(db: asyncpg.Pool, redis: RedisClient, scripts: LuaScripts, user_id: str) -> int:
    """Bring the user's live balance and record up to date; returns the adjustments synced.
    Raises QuotaSyncError when Redis is unavailable (nothing is lost: retried later)."""
    try:
        async with db.acquire() as connection:
            pending = await repository.unsynced_adjustments(connection, user_id)
            if not pending:
                return 0
            user = await connection.fetchrow("SELECT redis_shard FROM users WHERE id = $1", user_id)
            assert user is not None  # adjustments reference their user (RESTRICT)
            shard = user["redis_shard"]
            applied = {
                str(row["id"]): await _apply(
                    connection, redis, scripts, shard=shard, user_id=user_id, adjustment=row
                )
                for row in pending
            }
            async with connection.transaction():
                locked = await repository.user_for_sync(connection, user_id)
                assert locked is not None
                await hold_write_through(connection)
                await gateway_sync.write_user(
                    redis, shard=shard, user_id=user_id, status=locked["status"],
                    tier=locked["rate_tier"],
                )  # fmt: skip
                synced = 0
                for adjustment_id, moved in applied.items():
                    row = await repository.mark_synced(connection, adjustment_id, moved)
                    if row is None:
                        continue  # another process synced it meanwhile
                    synced += 1
                    shortfall = moved - row["planned"]
                    if shortfall > 0:
                        await repository.give_back_shortfall(connection, user_id, shortfall)
                        if row["payment_id"] is not None:
                            await repository.add_lost_units(
                                connection, str(row["payment_id"]), shortfall
                            )
            return synced
    except (RedisError, ApiError) as error:
        raise QuotaSyncError(f"Redis unavailable: {type(error).__name__}") from None


async def sync_user_or_defer(
    db: asyncpg.Pool, redis: RedisClient, scripts: LuaScripts, user_id: str
) -> bool:
    """sync_user right after a commit; a failure is logged and left to the reconciler."""
    try:
        await sync_user(db, redis, scripts, user_id)
    except QuotaSyncError as error:
        logger.warning(
            "quota sync deferred to the reconciler: %s", error, extra={"event": "payments"}
        )
        return False
    return True
