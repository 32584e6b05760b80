"""payment.succeeded / payment.refunded: written by the payments ledger into the webhook outbox
in the transaction that credits or takes back, once per payment however often the provider's
event arrives."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis_asyncio

from control_plane.payments.services import PaymentServices
from tests.control_plane.payments.support import (
    make_payment,
    stripe_charge_event,
    stripe_session_event,
)
from tests.control_plane.payments.test_ledger import process
from tests.factories import TEST_KEYRING


async def subscribe(db: asyncpg.Pool, user_id: str, events: list[str]) -> str:
    webhook_id = await db.fetchval("SELECT gen_random_uuid()")
    sealed = TEST_KEYRING.encrypt(b"whsec_test", agent_id=f"webhook:{webhook_id}", version=1)
    await db.execute(
        """INSERT INTO webhooks (id, user_id, url, events, secret_encrypted)
           VALUES ($1, $2, 'http://127.0.0.1:9/hook', $3, $4)""",
        webhook_id, user_id, events, sealed,
    )  # fmt: skip
    return str(webhook_id)


async def test_payment_events_reach_the_outbox_once(
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    payment = await make_payment(db)
    webhook_id = await subscribe(
        db, payment.developer.user_id, ["payment.succeeded", "payment.refunded"]
    )
    event = stripe_session_event(payment)
    assert await process(services, db, redis, payment, event) == "credited"
    await process(services, db, redis, payment, event)  # redelivered by the provider
    assert await process(services, db, redis, payment, stripe_charge_event(payment)) == "refunded"

    rows = await db.fetch(
        "SELECT event_type, payload FROM webhook_deliveries WHERE webhook_id = $1"
        " ORDER BY created_at",
        webhook_id,
    )
    assert [row["event_type"] for row in rows] == ["payment.succeeded", "payment.refunded"]
    assert rows[0]["payload"]["payment_id"] == str(payment.payment_id)
    assert rows[0]["payload"]["units_credited"] == 1000
