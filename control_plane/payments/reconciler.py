"""The worker's payment reconciler: repairs what a crash or an outage left between Postgres
and Redis, and retries events that arrived before their payment was ready.

Each run:
- every user with quota adjustments not yet applied to Redis (older than a few seconds, so
  the request that wrote them has had its own go) is synced (`quota_sync.sync_user`); a user
  whose sync fails (Redis still down) is simply retried next run;
- every `deferred` event of the last 3 days is processed again from its stored payload (it
  was verified when it arrived), e.g. a refund that came before the completion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from common.redis_store import LuaScripts, RedisClient
from control_plane.payments import ledger, repository
from control_plane.payments.providers import coinbase_commerce, stripe_checkout
from control_plane.payments.providers.base import ProviderEvent, WebhookRejected
from control_plane.payments.quota_sync import QuotaSyncError, sync_user

logger = logging.getLogger("agentlink.payments")

# The live path syncs right after its commit; the reconciler leaves it this long to do so.
SYNC_GRACE_S = 2.0
USERS_PER_RUN = 500
EVENTS_PER_RUN = 100
PARSERS: dict[str, Callable[[dict[str, Any]], ProviderEvent]] = {
    stripe_checkout.NAME: stripe_checkout.parse_event,
    coinbase_commerce.NAME: coinbase_commerce.parse_event,
}


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    users_synced: int
    users_failed: int
    events_retried: int
    events_applied: int


async def reconcile(
    db: asyncpg.Pool, redis: RedisClient, scripts: LuaScripts, *,
    grace_s: float = SYNC_GRACE_S,
) -> ReconcileReport:  # fmt: skip
    async with db.acquire() as connection:
        users = await repository.users_with_unsynced_adjustments(
            connection, older_than_s=grace_s, limit=USERS_PER_RUN
        )
        deferred = await repository.deferred_events(connection, EVENTS_PER_RUN)
    synced = failed = 0
    for user_id in users:
        try:
            await sync_user(db, redis, scripts, user_id)
            synced += 1
        except QuotaSyncError:
            failed += 1
    applied = 0
    for row in deferred:
        parse = PARSERS.get(row["provider"])
        if parse is None:
            continue
        try:
            event = parse(row["payload"])
        except WebhookRejected:
            continue  # stored before a parser change made it unreadable: leave it for a human
        result = await ledger.process(db, redis, scripts, event)
        applied += result.outcome not in ("deferred", ledger.DUPLICATE)
    if synced or failed or applied:
        logger.info(
            "payment reconciler: %d users synced, %d failed, %d deferred events applied",
            synced, failed, applied, extra={"event": "payment_reconciler"},
        )  # fmt: skip
    return ReconcileReport(synced, failed, len(deferred), applied)
