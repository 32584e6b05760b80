"""The worker's catch-up of users' gateway records after changes made outside our code.

migrations/0017 queues a user in `user_record_sync` whenever their status, rate tier, type,
admin role or token generation changes, however it is changed. Each run takes a batch of the
queue and rewrites each user's Redis record (status, tier and session fields) from the row.

The row is read FOR SHARE and the queue entry deleted in the transaction that writes Redis:
an update of the same user waits for it, so its own write-through (or the next queued run)
lands after ours and an older row can never overwrite a newer record. Queue entries are
taken SKIP LOCKED, so several workers split the queue. If Redis refuses, nothing is deleted
and the next run tries again. Changes our own code makes are queued too (the trigger cannot
tell them apart); rewriting their already current record is harmless.
"""

from __future__ import annotations

import logging

import asyncpg

from common.db import fetch_all
from common.records import UserSession
from common.redis_store import RedisClient
from control_plane import gateway_sync

logger = logging.getLogger("agentlink.worker")
_BATCH = 200


async def sync_user_records(db: asyncpg.Pool, redis: RedisClient) -> None:
    """Rewrite the records of up to one batch of queued users."""
    async with db.acquire() as connection, connection.transaction():
        rows = await fetch_all(
            connection,
            """SELECT q.user_id, u.redis_shard, u.status, u.rate_tier, u.user_type,
                      u.admin_role, u.token_generation
               FROM user_record_sync q JOIN users u ON u.id = q.user_id
               ORDER BY q.queued_at LIMIT $1
               FOR UPDATE OF q SKIP LOCKED FOR SHARE OF u""",
            _BATCH,
        )
        if not rows:
            return
        await gateway_sync.hold_write_through(connection)
        for row in rows:
            session = UserSession(row["user_type"], row["admin_role"], row["token_generation"])
            await gateway_sync.write_user(
                redis, shard=row["redis_shard"], user_id=str(row["user_id"]),
                status=row["status"], tier=row["rate_tier"], session=session,
            )  # fmt: skip
        await connection.execute(
            "DELETE FROM user_record_sync WHERE user_id = ANY($1::uuid[])",
            [row["user_id"] for row in rows],
        )
    logger.info("rewrote %d user records", len(rows),
                extra={"event": "user_record_sync", "count": len(rows)})  # fmt: skip
