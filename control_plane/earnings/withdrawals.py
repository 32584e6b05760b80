"""Withdrawals: a creator takes money out of their available balance.

Request (the API). One transaction: the creator's profile row is locked, the amount must be at
least WITHDRAWAL_MIN_USD (property 17) and at most the available balance, the balance is
debited and the withdrawal inserted with fee = amount x WITHDRAWAL_FEE_PERCENT (cents, half up)
and net = amount - fee (property 16). The row lock serialises concurrent requests of one
creator, so twenty parallel requests can never spend more than the balance; the balance's CHECK
(>= 0) is the database's backstop. An `Idempotency-Key` makes a retried request return the
withdrawal it made the first time instead of a second one.

Payout (the worker, `process_payouts`). Due withdrawals are claimed with FOR UPDATE SKIP LOCKED
and leased (status `processing`, attempts + 1, next_attempt_at = now + PAYOUT_LEASE_S) in a
transaction of their own, before the provider is called, so a worker that dies mid-payout
leaves a lease another worker resumes. The provider is called with the withdrawal's
idempotency key; from the second attempt on it is first asked what became of the earlier one
(`find`). Paid -> `completed` with the provider's reference. Declined -> `failed` with the reason
and, in the same transaction, the amount back on the available balance (property 32). Unknown
(timeout, 5xx) -> stays `processing`, retried with capped exponential backoff, never failed.
In flight (the provider finishes it on its own: `onchain`, whose chain job writes the outcome)
-> stays `processing`, looked at again after PAYOUT_INTERVAL_S, then with backoff.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import asyncpg

from common.db import DbConnection, fetch_all, fetch_one, fetch_optional
from control_plane.creators.wallet import InvalidAddress, normalise_wallet_address
from control_plane.earnings.money import withdrawal_fee
from control_plane.earnings.payouts.base import (
    Declined,
    InFlight,
    Paid,
    Payout,
    PayoutOutcome,
    PayoutOutcomeUnknown,
    PayoutProvider,
)
from control_plane.earnings.settings import EarningsSettings

logger = logging.getLogger("agentlink.worker.payouts")

WITHDRAWAL_COLUMNS = """id, creator_id, amount, fee, net_amount, status, payout_provider,
    destination, provider_reference, tx_hash, failure_reason, attempts, created_at, updated_at,
    completed_at"""


class WithdrawalRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # below_minimum, insufficient_balance, no_destination, no_profile
        self.message = message


@dataclass(frozen=True, slots=True)
class WithdrawalRequest:
    creator_id: str
    amount: Decimal  # whole cents, > 0
    provider: str
    request_key: str | None = None


async def _existing(
    connection: DbConnection, creator_id: str, request_key: str
) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        f"SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals"  # noqa: S608 - constant columns
        " WHERE creator_id = $1 AND request_key = $2",
        creator_id,
        request_key,
    )


async def request_withdrawal(
    db: asyncpg.Pool, settings: EarningsSettings, request: WithdrawalRequest
) -> tuple[asyncpg.Record, bool]:
    """Debit the balance and record the withdrawal; returns (row, created). A repeated
    Idempotency-Key returns the first withdrawal with created=False."""
    if request.amount < settings.withdrawal_min:
        raise WithdrawalRefused(
            "below_minimum", f"The minimum withdrawal is {settings.withdrawal_min} USD."
        )
    fee = withdrawal_fee(request.amount, settings.withdrawal_fee_percent)
    async with db.acquire() as connection:
        if request.request_key is not None:
            found = await _existing(connection, request.creator_id, request.request_key)
            if found is not None:
                return found, False
        try:
            async with connection.transaction():
                return await _debit_and_insert(connection, request, fee), True
        except asyncpg.UniqueViolationError:
            # The same Idempotency-Key raced in twice: the other request made it.
            assert request.request_key is not None
            found = await _existing(connection, request.creator_id, request.request_key)
            assert found is not None
            return found, False


def _payout_wallet(wallet: str | None) -> str:
    """The wallet an on-chain payout goes to, checked (seed property 10) and copied now: a
    later change of the profile's wallet never redirects a withdrawal on its way."""
    if wallet is None:
        raise WithdrawalRefused(
            "no_destination", "Set a wallet address first (PUT /api/v1/creators/me/wallet)."
        )
    try:
        return normalise_wallet_address(wallet)
    except InvalidAddress:
        raise WithdrawalRefused(
            "no_destination", "The wallet address on file is invalid; set it again."
        ) from None


async def _debit_and_insert(
    connection: DbConnection, request: WithdrawalRequest, fee: Decimal
) -> asyncpg.Record:
    profile = await connection.fetchrow(
        """SELECT p.available_balance, p.stripe_account_id, u.wallet_address
           FROM creator_profiles p JOIN users u ON u.id = p.user_id
           WHERE p.user_id = $1 FOR NO KEY UPDATE OF p""",
        request.creator_id,
    )
    if profile is None:
        raise WithdrawalRefused("no_profile", "There are no earnings on this account yet.")
    destination: str | None = None
    if request.provider == "stripe":
        destination = profile["stripe_account_id"]
        if destination is None:
            raise WithdrawalRefused(
                "no_destination",
                "Connect a Stripe account first (POST /api/v1/creators/me/payout-account).",
            )
    elif request.provider == "onchain":
        destination = _payout_wallet(profile["wallet_address"])
    if profile["available_balance"] < request.amount:
        raise WithdrawalRefused(
            "insufficient_balance",
            f"The available balance is {profile['available_balance'].normalize():f} USD.",
        )
    await connection.execute(
        "UPDATE creator_profiles SET available_balance = available_balance - $2 WHERE user_id = $1",
        request.creator_id,
        request.amount,
    )
    return await fetch_one(
        connection,
        f"""INSERT INTO withdrawals (creator_id, amount, fee, net_amount, wallet_address,
                                     payout_provider, destination, request_key)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            RETURNING {WITHDRAWAL_COLUMNS}""",  # noqa: S608 - constant columns
        request.creator_id,
        request.amount,
        fee,
        request.amount - fee,
        profile["wallet_address"],
        request.provider,
        destination,
        request.request_key,
    )


# -- the worker side ------------------------------------------------------------------------


@dataclass(slots=True)
class PayoutRun:
    completed: int = 0
    failed: int = 0
    unknown: int = 0
    in_flight: int = 0


def _storable(text: str) -> str:
    """A provider's message as Postgres TEXT takes it: no NUL, at most 1000 characters."""
    return text.replace("\x00", "")[:1000] or "refused"


def retry_delay(attempts: int, maximum_s: float) -> float:
    """Exponential backoff with jitter after `attempts` attempts: ~2, 4, 8 ... s, capped."""
    base: float = min(maximum_s, 2.0 ** min(attempts, 30))
    return base * random.uniform(0.8, 1.2)


async def _claim(db: asyncpg.Pool, lease_s: float, limit: int) -> list[asyncpg.Record]:
    return await fetch_all(
        db,
        """UPDATE withdrawals w
            SET status = 'processing', attempts = w.attempts + 1,
                next_attempt_at = now() + make_interval(secs => $1)
            FROM (SELECT id FROM withdrawals
                  WHERE status IN ('pending', 'processing') AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT $2
                  FOR UPDATE SKIP LOCKED) due
            WHERE w.id = due.id
            RETURNING w.id, w.creator_id, w.net_amount, w.payout_provider, w.destination,
                      w.attempts""",
        lease_s,
        limit,
    )


async def _outcome(provider: PayoutProvider, payout: Payout, attempts: int) -> PayoutOutcome:
    if attempts > 1:
        # An earlier attempt may have reached the provider: ask before paying again.
        found = await provider.find(payout)
        if found is not None:
            return found
    return await provider.pay(payout)


async def complete(
    db: asyncpg.Pool | DbConnection,
    withdrawal_id: str,
    reference: str,
    *,
    tx_hash: str | None = None,
) -> bool:
    """The payout was made: `reference` traces it at the provider (`tx_hash` on chain)."""
    status: str = await db.execute(
        """UPDATE withdrawals SET status = 'completed', provider_reference = $2,
                  tx_hash = coalesce($3, tx_hash), completed_at = now(), last_error = NULL
           WHERE id = $1 AND status = 'processing'""",
        withdrawal_id,
        reference,
        tx_hash,
    )
    return status != "UPDATE 0"


async def fail_and_refund(db: asyncpg.Pool, withdrawal_id: str, reason: str) -> bool:
    """The payout was refused: mark it failed and return its amount (property 32)."""
    async with db.acquire() as connection, connection.transaction():
        return await fail_and_refund_in(connection, withdrawal_id, reason)


async def fail_and_refund_in(connection: DbConnection, withdrawal_id: str, reason: str) -> bool:
    """`fail_and_refund` inside the caller's transaction (the chain outbox fails a payout in
    the same transaction as its job)."""
    row = await connection.fetchrow(
        """UPDATE withdrawals SET status = 'failed', failure_reason = $2
           WHERE id = $1 AND status = 'processing'
           RETURNING creator_id, amount""",
        withdrawal_id,
        _storable(reason),
    )
    if row is None:
        return False
    await connection.execute(
        "UPDATE creator_profiles SET available_balance = available_balance + $2 WHERE user_id = $1",
        row["creator_id"],
        row["amount"],
    )
    return True


async def process_payouts(
    db: asyncpg.Pool,
    providers: dict[str, PayoutProvider],
    settings: EarningsSettings,
    *,
    limit: int = 50,
) -> PayoutRun:
    """Send every due payout once; returns what happened."""
    run = PayoutRun()
    for row in await _claim(db, settings.payout_lease_s, limit):
        withdrawal_id = str(row["id"])
        provider = providers.get(row["payout_provider"])
        payout = Payout(
            withdrawal_id, str(row["creator_id"]), row["net_amount"], "usd", row["destination"]
        )
        try:
            if provider is None:
                raise PayoutOutcomeUnknown(f"payout provider {row['payout_provider']} is off")
            outcome = await _outcome(provider, payout, row["attempts"])
        except PayoutOutcomeUnknown as error:
            run.unknown += 1
            delay = retry_delay(row["attempts"], settings.payout_retry_max_s)
            await db.execute(
                """UPDATE withdrawals SET last_error = $2, next_attempt_at = now() + $3
                   WHERE id = $1 AND status = 'processing'""",
                withdrawal_id,
                _storable(str(error)),
                timedelta(seconds=delay),
            )
            logger.warning(
                "payout %s: outcome unknown (%s); asking again in %.0f s",
                withdrawal_id,
                error,
                delay,
                extra={"event": "payout_unknown"},
            )
            continue
        if isinstance(outcome, InFlight):
            run.in_flight += 1
            # No warning: the provider is doing its work. Soon at first, then less often.
            delay = min(settings.payout_interval_s * row["attempts"], settings.payout_retry_max_s)
            await db.execute(
                """UPDATE withdrawals SET last_error = $2, next_attempt_at = now() + $3
                   WHERE id = $1 AND status = 'processing'""",
                withdrawal_id,
                _storable(outcome.state),
                timedelta(seconds=delay),
            )
        elif isinstance(outcome, Paid):
            if await complete(db, withdrawal_id, outcome.reference, tx_hash=outcome.tx_hash):
                run.completed += 1
        elif isinstance(outcome, Declined) and await fail_and_refund(
            db, withdrawal_id, outcome.reason
        ):
            run.failed += 1
            logger.warning(
                "payout %s declined: %s",
                withdrawal_id,
                outcome.reason,
                extra={"event": "payout_declined"},
            )
    return run
