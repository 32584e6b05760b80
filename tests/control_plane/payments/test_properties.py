"""Seed properties 13 and 14 over any interleaving of webhook deliveries: duplicates of one
event, concurrent deliveries of several, events out of order, and deliveries that must not
count at all (unsigned, badly signed, replayed too late, about a payment that is not ours).
Each delivery goes through what the webhook route runs: signature verification, then the
ledger's transaction, then the Redis step; on the session's real Postgres and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import asyncpg
import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.payments import ledger
from control_plane.payments.providers.base import WebhookRejected
from control_plane.payments.services import PaymentServices
from tests.control_plane.payments.support import (
    Payment,
    coinbase_event,
    live_quota,
    load_live_quota,
    make_payment,
    pg_remaining,
    signed_coinbase,
    signed_stripe,
    stripe_session_event,
)

FREE = 100
UNITS = 1000
Delivery = tuple[bytes, dict[str, str]]

# What each provider may send about one payment: events that confirm it, and events that do
# not (pending steps, failures, types we store and ignore).
STRIPE_CONFIRMING = ("completed_paid", "async_succeeded")
STRIPE_OTHER = ("completed_unpaid", "async_failed", "expired", "intent_succeeded")
COINBASE_CONFIRMING = ("confirmed", "resolved")
COINBASE_OTHER = ("created", "pending", "failed")
# Deliveries that must be refused or ignored whatever else happens.
BAD = ("wrong_secret", "stale", "one_byte_changed", "unsigned", "not_our_payment",
       "wrong_amount_for_an_unknown_payment")  # fmt: skip


def stripe_event(payment: Payment, kind: str) -> dict[str, object]:
    if kind == "intent_succeeded":
        event = stripe_session_event(payment, "payment_intent.succeeded")
        event["data"] = {"object": {"id": payment.ref, "object": "payment_intent",
                                    "metadata": {"payment_id": payment.payment_id}}}  # fmt: skip
        return event
    event_type, status = {
        "completed_paid": ("checkout.session.completed", "paid"),
        "completed_unpaid": ("checkout.session.completed", "unpaid"),
        "async_succeeded": ("checkout.session.async_payment_succeeded", "paid"),
        "async_failed": ("checkout.session.async_payment_failed", "unpaid"),
        "expired": ("checkout.session.expired", "unpaid"),
    }[kind]
    return stripe_session_event(payment, event_type, payment_status=status)


def sign(payment: Payment, event: dict[str, object]) -> Delivery:
    if payment.provider == "stripe":
        return signed_stripe(event)
    return signed_coinbase(event)


def good_delivery(payment: Payment, kind: str) -> Delivery:
    if payment.provider == "stripe":
        return sign(payment, stripe_event(payment, kind))
    return sign(payment, coinbase_event(payment, f"charge:{kind}"))


def bad_delivery(payment: Payment, kind: str) -> Delivery:  # noqa: PLR0911
    confirming = "completed_paid" if payment.provider == "stripe" else "confirmed"
    if kind == "not_our_payment":  # validly signed, about a payment id we never issued
        stranger = replace(payment, payment_id=str(uuid.uuid4()), session_id="cs_x", ref="pi_x")
        return good_delivery(stranger, confirming)
    if kind == "wrong_amount_for_an_unknown_payment":
        stranger = replace(payment, payment_id=str(uuid.uuid4()), session_id="cs_y", ref="pi_y")
        return good_delivery(replace(stranger, amount=payment.amount * 100), confirming)
    event = (stripe_event(payment, confirming) if payment.provider == "stripe"
             else coinbase_event(payment, "charge:confirmed"))  # fmt: skip
    if kind == "wrong_secret":
        if payment.provider == "stripe":
            return signed_stripe(event, secrets=("whsec_attacker",))
        return signed_coinbase(event, secret="attacker")
    if kind == "stale":  # a real delivery captured and replayed after the tolerance
        if payment.provider == "stripe":
            return signed_stripe(event, timestamp=int(time.time()) - 3600)
        return signed_coinbase(event, secret="replayed-with-an-old-secret")
    body, headers = sign(payment, event)
    if kind == "one_byte_changed":
        index = body.index(payment.payment_id.encode()) + 3
        return body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :], headers
    return body, {}  # unsigned


async def deliver(
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis, provider: str,
    delivery: Delivery,
) -> str:  # fmt: skip
    body, headers = delivery
    try:
        event = services.provider(provider).verify(body, headers)
    except WebhookRejected:
        return "rejected"
    return (await ledger.process(db, redis, services.scripts, event)).outcome


async def deliver_interleaved(
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis, provider: str,
    batches: list[list[Delivery]],
) -> list[str]:  # fmt: skip
    """Batches one after another; the deliveries of a batch all at once (concurrently)."""
    outcomes: list[str] = []
    for batch in batches:
        outcomes += await asyncio.gather(
            *(deliver(services, db, redis, provider, delivery) for delivery in batch)
        )
    return outcomes


def schedule(data: st.DataObject, deliveries: list[Delivery]) -> list[list[Delivery]]:
    """Any order, each delivery repeated 1-3 times, cut into concurrent batches."""
    repeated = [d for d in deliveries for _ in range(data.draw(st.integers(1, 3)))]
    ordered = data.draw(st.permutations(repeated))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(ordered) - 1)), max_size=4)))
    batches, start = [], 0
    for cut in [*cuts, len(ordered)]:
        if cut > start:
            batches.append(list(ordered[start:cut]))
            start = cut
    return batches


async def assert_once(
    db: asyncpg.Pool, redis: redis_asyncio.Redis, payment: Payment, *, credited: bool,
    loaded: bool,
) -> None:  # fmt: skip
    expected = FREE + (UNITS if credited else 0)
    assert await pg_remaining(db, payment.developer) == expected
    live = await live_quota(redis, payment.developer)
    if loaded or credited:
        assert live == expected  # credited: the Redis step loaded the balance if it had none
    else:
        assert live is None
    adjustments = await db.fetchval(
        "SELECT count(*) FROM quota_adjustments WHERE payment_id = $1", payment.payment_id
    )
    assert adjustments == (1 if credited else 0)
    unsynced = await db.fetchval(
        "SELECT count(*) FROM quota_adjustments WHERE payment_id = $1 AND synced_at IS NULL",
        payment.payment_id,
    )
    assert unsynced == 0
    row = await db.fetchrow(
        """SELECT p.status, u.rate_tier FROM payments p JOIN users u ON u.id = p.user_id
           WHERE p.id = $1""",
        payment.payment_id,
    )
    assert row is not None
    if credited:
        assert (row["status"], row["rate_tier"]) == ("completed", "paid")
    else:
        assert row["status"] in ("pending", "failed", "expired")
        assert row["rate_tier"] == "free"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_property_13_payment_quota_consistency(
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis, data: st.DataObject
) -> None:
    """Property 13: Payment-Quota Consistency. For any confirmed payment of package Y, the
    developer's quota increases by exactly Y, in Postgres and in the gateway's live balance,
    whatever mix of duplicate, concurrent and out-of-order deliveries confirms it, and
    whatever bad deliveries are mixed in."""
    provider = data.draw(st.sampled_from(["stripe", "coinbase"]))
    payment = await make_payment(db, provider=provider, units=UNITS, free_quota=FREE)
    loaded = data.draw(st.booleans())  # the gateway already holds a live balance, or not
    if loaded:
        await load_live_quota(db, redis, payment.developer)
    confirming = STRIPE_CONFIRMING if provider == "stripe" else COINBASE_CONFIRMING
    other = STRIPE_OTHER if provider == "stripe" else COINBASE_OTHER
    kinds = data.draw(st.lists(st.sampled_from(confirming), min_size=1, max_size=2, unique=True))
    kinds += data.draw(st.lists(st.sampled_from(other), max_size=3, unique=True))
    bad = data.draw(st.lists(st.sampled_from(BAD), max_size=2, unique=True))
    deliveries = [good_delivery(payment, kind) for kind in kinds]
    deliveries += [bad_delivery(payment, kind) for kind in bad]
    outcomes = await deliver_interleaved(services, db, redis, provider, schedule(data, deliveries))
    assert outcomes.count("credited") == 1, outcomes
    await assert_once(db, redis, payment, credited=True, loaded=loaded)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_property_14_failed_payment_no_credit(
    services: PaymentServices, db: asyncpg.Pool, redis: redis_asyncio.Redis, data: st.DataObject
) -> None:
    """Property 14: Failed Payment No-Credit. For any payment that is never confirmed (failed,
    expired, still pending) the quota stays unchanged, however its own events and any
    unsigned, badly signed, replayed or foreign deliveries arrive."""
    provider = data.draw(st.sampled_from(["stripe", "coinbase"]))
    payment = await make_payment(db, provider=provider, units=UNITS, free_quota=FREE)
    loaded = data.draw(st.booleans())
    if loaded:
        await load_live_quota(db, redis, payment.developer)
    other = STRIPE_OTHER if provider == "stripe" else COINBASE_OTHER
    kinds = data.draw(st.lists(st.sampled_from(other), max_size=3, unique=True))
    bad = data.draw(st.lists(st.sampled_from(BAD), min_size=1, max_size=4, unique=True))
    deliveries = [good_delivery(payment, kind) for kind in kinds]
    deliveries += [bad_delivery(payment, kind) for kind in bad]
    # A confirmation for the right payment but the wrong amount fails it; it never credits.
    if data.draw(st.booleans()):
        deliveries.append(good_delivery(replace(payment, amount=payment.amount + 1),
                                        "completed_paid" if provider == "stripe"
                                        else "confirmed"))  # fmt: skip
    outcomes = await deliver_interleaved(services, db, redis, provider, schedule(data, deliveries))
    assert "credited" not in outcomes
    assert outcomes.count("rejected") >= sum(kind not in ("not_our_payment",
               "wrong_amount_for_an_unknown_payment") for kind in bad)  # fmt: skip
    await assert_once(db, redis, payment, credited=False, loaded=loaded)
    stored = await db.fetchval(
        "SELECT count(*) FROM payment_events WHERE payment_id = $1", payment.payment_id
    )
    assert stored == len(kinds) + (len(deliveries) - len(kinds) - len(bad))
