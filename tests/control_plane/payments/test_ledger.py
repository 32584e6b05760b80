"""The ledger and its Redis side, case by case: Redis down while crediting (then back: right,
once), a gateway cold load racing a credit, refunds and disputes taking back what is left
(never below zero, the rest recorded as lost), partial and out-of-order refunds, manual
credits through the same path. Each runs on the single node and on the Valkey cluster
(REDIS_CLUSTER): the quota scripts and the tier write-through land on the user's shard."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import redis.asyncio as redis_asyncio

from common import keyspace
from common.redis_store import LuaScripts, create_redis
from control_plane.payments import ledger
from control_plane.payments.reconciler import reconcile
from control_plane.payments.services import PaymentServices
from devstack.servers import free_port
from tests.control_plane.conftest import Backend
from tests.control_plane.payments.support import (
    Payment,
    coinbase_event,
    live_payment,
    live_quota,
    load_live_quota,
    make_payment,
    pg_remaining,
    signed_coinbase,
    signed_stripe,
    stripe_charge_event,
    stripe_session_event,
)

FREE = 100


async def process(
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis,
    payment: Payment, event: dict[str, object],
) -> str:  # fmt: skip
    body, headers = (signed_stripe(event) if payment.provider == "stripe"
                     else signed_coinbase(event))  # fmt: skip
    verified = services.provider(payment.provider).verify(body, headers)
    return (await ledger.process(db, redis, services.scripts, verified)).outcome


async def credited_payment(
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis
) -> Payment:
    """A `live_payment` whose checkout-completed event has been processed: credited."""
    payment = await live_payment(db, redis)
    assert await process(services, db, redis, payment, stripe_session_event(payment)) == (
        "credited"
    )
    return payment


async def use_quota(redis: redis_asyncio.Redis, payment: Payment, units: int) -> None:
    """Calls the gateway charged from the live balance (not yet ingested into Postgres)."""
    key = keyspace.quota(payment.developer.shard, payment.developer.user_id)
    await redis.decrby(key, units)


async def ingest_usage(db: asyncpg.Pool, payment: Payment, units: int) -> None:
    """What the usage worker does for those calls."""
    await db.execute(
        "UPDATE quotas SET used_quota = used_quota + $2 WHERE user_id = $1",
        payment.developer.user_id, units,
    )  # fmt: skip


async def test_redis_down_while_crediting_then_back_quota_right_once(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    redis = backend.redis
    payment = await live_payment(db, redis)
    down = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    try:
        outcome = await process(services, db, down, payment, stripe_session_event(payment))
    finally:
        await down.aclose()
    assert outcome == "credited"  # the credit is committed in Postgres, answered 200
    assert await pg_remaining(db, payment.developer) == FREE + 1000
    assert await live_quota(redis, payment.developer) == FREE  # Redis missed it
    tier = await redis.hget(keyspace.user_record(payment.developer.shard,
                                                 payment.developer.user_id), "tier")  # fmt: skip
    assert tier is None
    # Redis is back: the reconciler repairs the difference, and only once.
    scripts = LuaScripts(redis)
    for _ in range(3):
        await reconcile(db, redis, scripts, grace_s=0)
    assert await live_quota(redis, payment.developer) == FREE + 1000
    assert await pg_remaining(db, payment.developer) == FREE + 1000
    record = keyspace.user_record(payment.developer.shard, payment.developer.user_id)
    assert await redis.hget(record, "tier") == b"paid"
    # A redelivery of the same event after all that changes nothing either.
    again = await process(services, db, redis, payment, stripe_session_event(payment))
    assert again == "no_change"
    assert await live_quota(redis, payment.developer) == FREE + 1000


async def test_the_same_event_redelivered_is_a_duplicate(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    redis = backend.redis
    payment = await make_payment(db)
    event = stripe_session_event(payment)
    assert await process(services, db, redis, payment, event) == "credited"
    assert await process(services, db, redis, payment, event) == ledger.DUPLICATE
    assert await live_quota(redis, payment.developer) == FREE + 1000


async def test_a_cold_load_from_before_the_credit_still_gets_it_once(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    """A gateway read the balance just before the credit committed and writes it to Redis
    just after: the balance it writes carries the older adjust_seq, so the credit is
    applied on top of it (exactly once), not lost."""
    redis = backend.redis
    payment = await make_payment(db)
    stale = await db.fetchrow(
        "SELECT total_quota + free_quota - used_quota AS b, adjust_seq FROM quotas"
        " WHERE user_id = $1", payment.developer.user_id,
    )  # fmt: skip
    assert stale is not None
    down = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    try:  # committed, not yet in Redis
        assert await process(services, db, down, payment, stripe_session_event(payment)) == (
            "credited"
        )
    finally:
        await down.aclose()
    keys = [
        keyspace.quota(payment.developer.shard, payment.developer.user_id),
        keyspace.quota_adjustments(payment.developer.shard, payment.developer.user_id),
    ]
    await services.scripts["load_quota"](keys=keys, args=[stale["b"], stale["adjust_seq"]])
    await reconcile(db, redis, services.scripts, grace_s=0)
    assert await live_quota(redis, payment.developer) == FREE + 1000
    # And a load made after the credit (a Redis that lost the key) holds it already.
    await redis.delete(*keys)
    await load_live_quota(db, redis, payment.developer)
    await db.execute("UPDATE quota_adjustments SET applied = NULL, synced_at = NULL"
                     " WHERE payment_id = $1", payment.payment_id)  # fmt: skip
    await reconcile(db, redis, services.scripts, grace_s=0)
    assert await live_quota(redis, payment.developer) == FREE + 1000


async def test_a_refund_takes_back_what_is_left_and_records_the_used_part_as_lost(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    redis = backend.redis
    payment = await credited_payment(services, db, redis)
    # 1,050 of the 1,100 units are used (all the free ones too) and ingested: 50 left.
    await use_quota(redis, payment, 1050)
    await ingest_usage(db, payment, 1050)
    outcome = await process(services, db, redis, payment, stripe_charge_event(payment))
    assert outcome == "refunded"
    assert await live_quota(redis, payment.developer) == 0
    assert await pg_remaining(db, payment.developer) == 0
    row = await db.fetchrow(
        "SELECT status, refunded_usd, refunded_units, lost_units FROM payments WHERE id = $1",
        payment.payment_id,
    )
    assert row is not None
    assert dict(row) == {"status": "refunded", "refunded_usd": Decimal("10.00"),
                         "refunded_units": 1000, "lost_units": 950}  # fmt: skip
    tier = await db.fetchval("SELECT rate_tier FROM users WHERE id = $1",
                             payment.developer.user_id)  # fmt: skip
    assert tier == "free"  # no completed payment is left


async def test_a_refund_finding_less_in_redis_than_postgres_knew_stops_at_zero(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    """Usage not yet ingested: Postgres thinks 1,100 are left, Redis has 40. Redis stops at
    zero; the shortfall is given back to Postgres and counted as lost, so both agree once
    the usage is ingested."""
    redis = backend.redis
    payment = await credited_payment(services, db, redis)
    await use_quota(redis, payment, 1060)
    await process(services, db, redis, payment, stripe_charge_event(payment))
    assert await live_quota(redis, payment.developer) == 0
    await ingest_usage(db, payment, 1060)
    assert await pg_remaining(db, payment.developer) == 0
    lost = await db.fetchval("SELECT lost_units FROM payments WHERE id = $1", payment.payment_id)
    assert lost == 960


async def test_partial_refunds_take_back_their_share_rounded_up_in_any_order(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    redis = backend.redis
    payment = await make_payment(db, amount=Decimal("10.00"), units=1000)
    await load_live_quota(db, redis, payment.developer)
    await process(services, db, redis, payment, stripe_session_event(payment))
    # charge.refunded carries the cumulative amount: $2.50 then $6.01 (an older event, $2.50,
    # redelivered late after the second, changes nothing).
    first = stripe_charge_event(payment, refunded=Decimal("2.50"))
    second = stripe_charge_event(payment, refunded=Decimal("6.01"))
    assert await process(services, db, redis, payment, first) == "refunded"
    assert await live_quota(redis, payment.developer) == FREE + 750
    assert await process(services, db, redis, payment, second) == "refunded"
    assert await live_quota(redis, payment.developer) == FREE + 1000 - 601
    late = stripe_charge_event(payment, refunded=Decimal("2.50"))
    assert await process(services, db, redis, payment, late) == "no_change"
    row = await db.fetchrow("SELECT status, refunded_units FROM payments WHERE id = $1",
                            payment.payment_id)  # fmt: skip
    assert row is not None
    assert (row["status"], row["refunded_units"]) == ("completed", 601)  # still paid tier
    assert await pg_remaining(db, payment.developer) == FREE + 399


async def test_a_dispute_takes_back_every_unit_not_yet_taken(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    redis = backend.redis
    payment = await credited_payment(services, db, redis)
    await process(services, db, redis, payment,
                  stripe_charge_event(payment, refunded=Decimal("1.00")))  # fmt: skip
    outcome = await process(services, db, redis, payment,
                            stripe_charge_event(payment, "charge.dispute.created"))  # fmt: skip
    assert outcome == "disputed"
    assert await live_quota(redis, payment.developer) == FREE
    row = await db.fetchrow("SELECT status, refunded_units, lost_units FROM payments"
                            " WHERE id = $1", payment.payment_id)  # fmt: skip
    assert row is not None
    assert tuple(row) == ("disputed", 1000, 0)


async def test_a_refund_before_the_completion_waits_for_it(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    """Out of order: the refund is deferred (409, so Stripe retries), and the reconciler
    applies it once the completion has arrived: net effect, nothing credited."""
    redis = backend.redis
    payment = await live_payment(db, redis)
    refund = stripe_charge_event(payment)
    assert await process(services, db, redis, payment, refund) == "deferred"
    assert await process(services, db, redis, payment, stripe_session_event(payment)) == (
        "credited"
    )
    assert await live_quota(redis, payment.developer) == FREE + 1000
    report = await reconcile(db, redis, services.scripts, grace_s=0)
    assert report.events_applied >= 1
    assert await live_quota(redis, payment.developer) == FREE
    assert await process(services, db, redis, payment, refund) == ledger.DUPLICATE
    outcome = await db.fetchval("SELECT outcome FROM payment_events WHERE event_id = $1",
                                refund["id"])  # fmt: skip
    assert outcome == "refunded"


async def test_coinbase_failed_then_resolved_credits_once(
    services: PaymentServices, db: asyncpg.Pool, backend: Backend
) -> None:
    redis = backend.redis
    payment = await make_payment(db, provider="coinbase")
    failed = await process(services, db, redis, payment, coinbase_event(payment, "charge:failed"))
    assert failed == "failed"
    resolved = coinbase_event(payment, "charge:resolved")
    assert await process(services, db, redis, payment, resolved) == "credited"
    confirmed = coinbase_event(payment, "charge:confirmed")
    assert await process(services, db, redis, payment, confirmed) == "no_change"
    assert await pg_remaining(db, payment.developer) == FREE + 1000
