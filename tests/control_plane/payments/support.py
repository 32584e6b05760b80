"""Helpers for payment tests: provider events in each provider's wire format (built with the
fakes' own event builders), signed or tampered with, and the two balances of a developer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import redis.asyncio as redis_asyncio

from common import keyspace
from common.redis_store import LuaScripts
from control_plane.payments import repository as payments
from fake_payments.coinbase import events as coinbase_events
from fake_payments.stripe import events as stripe_events
from tests.factories import Developer, make_developer

STRIPE_KEY = "sk_test_agentlink_payments"
# The second one is the old secret of a rotation in progress: both verify.
STRIPE_SECRETS = ("whsec_test_current_secret", "whsec_test_previous_secret")
COINBASE_KEY = "cb-test-api-key"
COINBASE_SECRETS = ("cb-test-webhook-secret", "cb-test-previous-secret")


@dataclass(frozen=True)
class Payment:
    payment_id: str
    developer: Developer
    provider: str
    units: int
    amount: Decimal
    session_id: str  # Stripe checkout session / Coinbase charge id
    ref: str  # Stripe payment intent / Coinbase charge code


async def make_payment(
    db: asyncpg.Pool, *, provider: str = "stripe", units: int = 1000,
    amount: Decimal = Decimal("10.00"), developer: Developer | None = None,
    free_quota: int = 100,
) -> Payment:  # fmt: skip
    """A pending payment as checkout leaves it (the provider's ids already recorded)."""
    developer = developer or await make_developer(db, quota=0, free_quota=free_quota)
    session_id = f"cs_test_{uuid.uuid4().hex}" if provider == "stripe" else str(uuid.uuid4())
    ref = f"pi_test_{uuid.uuid4().hex}" if provider == "stripe" else uuid.uuid4().hex[:8].upper()
    async with db.acquire() as connection, connection.transaction():
        payment_id = await payments.insert_payment(
            connection, user_id=developer.user_id, package="starter", amount=amount, units=units,
            method=provider,
        )  # fmt: skip
        url = f"https://checkout.{provider}.test/{session_id}"
        await payments.set_checkout(connection, payment_id, session_id, None, url)
    return Payment(payment_id, developer, provider, units, amount, session_id, ref)


async def live_payment(db: asyncpg.Pool, redis: redis_asyncio.Redis, **options: Any) -> Payment:
    """`make_payment`, its developer's balance already live in Redis (as after a gateway call)."""
    payment = await make_payment(db, **options)
    await load_live_quota(db, redis, payment.developer)
    return payment


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def stripe_session_event(
    payment: Payment, event_type: str = "checkout.session.completed", *,
    payment_status: str = "paid", amount: Decimal | None = None,
) -> dict[str, Any]:  # fmt: skip
    session = {
        "id": payment.session_id, "object": "checkout.session",
        "amount_total": _cents(amount if amount is not None else payment.amount),
        "client_reference_id": payment.payment_id, "currency": "usd",
        "metadata": {"payment_id": payment.payment_id}, "mode": "payment",
        "payment_intent": payment.ref, "payment_status": payment_status, "status": "complete",
    }  # fmt: skip
    return stripe_events.build_event(event_type, session)


def stripe_charge_event(
    payment: Payment, event_type: str = "charge.refunded", *, refunded: Decimal | None = None
) -> dict[str, Any]:
    refunded = payment.amount if refunded is None else refunded
    if event_type == "charge.dispute.created":
        obj = {"id": f"dp_{uuid.uuid4().hex}", "object": "dispute",
               "amount": _cents(payment.amount), "charge": "ch_x", "currency": "usd",
               "metadata": {}, "payment_intent": payment.ref, "reason": "fraudulent",
               "status": "needs_response"}  # fmt: skip
    else:
        obj = {"id": f"ch_{uuid.uuid4().hex}", "object": "charge",
               "amount": _cents(payment.amount), "amount_refunded": _cents(refunded),
               "currency": "usd", "metadata": {"payment_id": payment.payment_id},
               "payment_intent": payment.ref, "refunded": refunded == payment.amount}  # fmt: skip
    return stripe_events.build_event(event_type, obj)


def signed_stripe(
    event: dict[str, Any], *, secrets: tuple[str, ...] = STRIPE_SECRETS[:1],
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    body = stripe_events.encode(event)
    headers = stripe_events.delivery_headers(body, secrets, timestamp or int(time.time()))
    return body, {name.lower(): value for name, value in headers.items()}


def coinbase_event(payment: Payment, event_type: str = "charge:confirmed") -> dict[str, Any]:
    charge = {
        "id": payment.session_id, "resource": "charge", "code": payment.ref,
        "metadata": {"payment_id": payment.payment_id},
        "pricing": {"local": {"amount": f"{payment.amount:.2f}", "currency": "USD"}},
        "timeline": [{"status": "NEW"}],
    }  # fmt: skip
    return coinbase_events.build_event(event_type, charge)


def signed_coinbase(
    event: dict[str, Any], *, secret: str = COINBASE_SECRETS[0]
) -> tuple[bytes, dict[str, str]]:
    body = coinbase_events.envelope(event, 1)
    headers = coinbase_events.delivery_headers(body, secret)
    return body, {name.lower(): value for name, value in headers.items()}


def event_body(event: dict[str, Any], provider: str) -> bytes:
    if provider == "stripe":
        return stripe_events.encode(event)
    return orjson.dumps({"id": 1, "event": event})


async def pg_remaining(db: asyncpg.Pool, developer: Developer) -> int:
    value = await db.fetchval(
        "SELECT total_quota + free_quota - used_quota FROM quotas WHERE user_id = $1",
        developer.user_id,
    )
    return int(value)


async def live_quota(redis: redis_asyncio.Redis, developer: Developer) -> int | None:
    value: Any = await redis.get(keyspace.quota(developer.shard, developer.user_id))
    return None if value is None else int(value)


async def load_live_quota(
    db: asyncpg.Pool, redis: redis_asyncio.Redis, developer: Developer
) -> None:
    """Give the developer a live balance, as the gateway's cold load would."""
    row = await db.fetchrow(
        "SELECT total_quota + free_quota - used_quota AS balance, adjust_seq FROM quotas"
        " WHERE user_id = $1",
        developer.user_id,
    )
    assert row is not None
    keys = [keyspace.quota(developer.shard, developer.user_id),
            keyspace.quota_adjustments(developer.shard, developer.user_id)]  # fmt: skip
    await LuaScripts(redis)["load_quota"](keys=keys, args=[row["balance"], row["adjust_seq"]])
