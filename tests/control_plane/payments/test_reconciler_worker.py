"""The payment reconciler runs in the real worker process: a credit committed while Redis was
unreachable reaches the live balance (and the tier the gateway's record) once Redis is back,
without anyone redelivering the event."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import redis.asyncio as redis_asyncio

from common import keyspace
from common.redis_store import create_redis
from control_plane.payments import ledger
from control_plane.payments.services import PaymentServices
from devstack.servers import free_port
from tests.control_plane.payments.support import (
    live_quota,
    load_live_quota,
    make_payment,
    signed_stripe,
    stripe_session_event,
)
from tests.control_plane.test_worker_process import Worker
from tests.processes import Servers, worker_env
from tests.support import wait_until


async def test_the_worker_applies_a_credit_redis_missed(  # noqa: PLR0917
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis,
    servers: Servers, database_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    payment = await make_payment(db)
    await load_live_quota(db, redis, payment.developer)
    body, headers = signed_stripe(stripe_session_event(payment))
    event = services.provider("stripe").verify(body, headers)
    down = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    try:
        assert (await ledger.process(db, down, services.scripts, event)).outcome == "credited"
    finally:
        await down.aclose()
    assert await live_quota(redis, payment.developer) == 100
    env = os.environ | worker_env(
        database_url, servers.redis_url, PAYMENT_RECONCILE_INTERVAL_S="0.2"
    )
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    try:
        record = keyspace.user_record(payment.developer.shard, payment.developer.user_id)

        async def synced() -> bool:
            synced_at = await db.fetchval(
                "SELECT synced_at FROM quota_adjustments WHERE payment_id = $1",
                payment.payment_id,
            )
            return synced_at is not None

        await wait_until(synced, 30, "the reconciler to apply the credit")
        assert await live_quota(redis, payment.developer) == 1100
        assert await redis.hget(record, "tier") == b"paid"
    finally:
        worker.stop()
    assert await live_quota(redis, payment.developer) == 1100
