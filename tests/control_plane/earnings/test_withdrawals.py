"""Withdrawals and payouts: properties 16, 17 and 32, no double spend under concurrency, and
payouts whose outcome is unknown resolved by asking the provider, never paying twice."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.earnings.money import withdrawal_fee
from control_plane.earnings.payouts.base import (
    Declined,
    Paid,
    Payout,
    PayoutOutcome,
    PayoutOutcomeUnknown,
)
from control_plane.earnings.payouts.ledger import LedgerPayouts
from control_plane.earnings.withdrawals import (
    WithdrawalRefused,
    WithdrawalRequest,
    process_payouts,
    request_withdrawal,
)
from tests.control_plane.earnings.helpers import (
    balances,
    earnings_settings,
    fund,
    make_withdrawal_due,
)
from tests.factories import make_user

cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
percents = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=2)


class ScriptedProvider:
    """A payout provider that answers from a script, standing in for the outside service at
    the protocol edge: it records what it was asked to pay and what it 'paid'. The script is
    for one creator's payouts (other tests' leftovers are simply paid)."""

    name = "ledger"

    def __init__(self, creator: str | None = None, *outcomes: PayoutOutcome | Exception) -> None:
        self.creator = creator
        self.script = list(outcomes)
        self.paid: dict[str, Decimal] = {}
        self.pay_calls = 0
        self.find_calls = 0

    async def pay(self, payout: Payout) -> PayoutOutcome:
        self.pay_calls += payout.creator_id == self.creator
        if payout.idempotency_key in self.paid:  # idempotency, as real providers keep it
            return Paid(f"ref-{payout.withdrawal_id}")
        scripted = self.script and payout.creator_id == self.creator
        outcome = self.script.pop(0) if scripted else Paid(f"ref-{payout.withdrawal_id}")
        if isinstance(outcome, Paid | PayoutOutcomeUnknown):
            self.paid[payout.idempotency_key] = payout.amount  # the money left
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def find(self, payout: Payout) -> PayoutOutcome | None:
        self.find_calls += payout.creator_id == self.creator
        if payout.idempotency_key in self.paid:
            return Paid(f"ref-{payout.withdrawal_id}")
        return None

    async def aclose(self) -> None:
        return None


async def new_creator(db: asyncpg.Pool, balance: Decimal) -> str:
    creator = await make_user(db, "creator")
    await fund(db, creator, balance)
    return creator


async def withdrawal(db: asyncpg.Pool, withdrawal_id: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM withdrawals WHERE id = $1", withdrawal_id)
    assert row is not None
    return row


@settings(max_examples=25, deadline=None)
@given(amount=cents, fee_percent=percents)
async def test_property_16_withdrawal_fee_calculation(
    db_pool: asyncpg.Pool, amount: Decimal, fee_percent: Decimal
) -> None:
    """Property 16: for a withdrawal of X the net transferred is X minus the fee (X times the
    fee percentage, in cents), and the payout sends exactly that net."""
    config = earnings_settings(WITHDRAWAL_FEE_PERCENT=str(fee_percent), WITHDRAWAL_MIN_USD="0.01")
    creator = await new_creator(db_pool, amount)
    row, created = await request_withdrawal(
        db_pool, config, WithdrawalRequest(creator, amount, "ledger")
    )
    assert created
    expected_fee = (amount * fee_percent / 100).quantize(Decimal("0.01"))
    assert abs(row["fee"] - expected_fee) <= Decimal("0.01")
    assert row["fee"] == withdrawal_fee(amount, fee_percent)
    assert row["net_amount"] == amount - row["fee"]
    assert row["amount"] == amount
    provider = ScriptedProvider()
    await process_payouts(db_pool, {"ledger": provider}, config)
    assert provider.paid[f"withdrawal-{row['id']}"] == amount - row["fee"]


@settings(max_examples=25, deadline=None)
@given(minimum=st.decimals(min_value=Decimal("0.02"), max_value=Decimal(1000), places=2),
       data=st.data())  # fmt: skip
async def test_property_17_withdrawal_threshold_enforcement(
    db_pool: asyncpg.Pool, minimum: Decimal, data: st.DataObject
) -> None:
    """Property 17: any withdrawal below the minimum is refused and moves nothing; the
    minimum itself is accepted."""
    config = earnings_settings(WITHDRAWAL_MIN_USD=str(minimum))
    below = data.draw(st.decimals(min_value=Decimal("0.01"), max_value=minimum - Decimal("0.01"),
                                  places=2))  # fmt: skip
    creator = await new_creator(db_pool, minimum * 2)
    with pytest.raises(WithdrawalRefused) as refused:
        await request_withdrawal(db_pool, config, WithdrawalRequest(creator, below, "ledger"))
    assert refused.value.reason == "below_minimum"
    assert (await balances(db_pool, creator))["available_balance"] == minimum * 2
    assert (
        await db_pool.fetchval("SELECT count(*) FROM withdrawals WHERE creator_id = $1", creator)
        == 0
    )
    row, _ = await request_withdrawal(
        db_pool, config, WithdrawalRequest(creator, minimum, "ledger")
    )
    assert row["amount"] == minimum
    assert (await balances(db_pool, creator))["available_balance"] == minimum


@settings(max_examples=15, deadline=None)
@given(amount=cents, reason=st.text(min_size=1, max_size=50))
async def test_property_32_withdrawal_failure_recovery(
    db_pool: asyncpg.Pool, amount: Decimal, reason: str
) -> None:
    """Property 32: a withdrawal the provider refuses is marked failed with the reason and its
    whole amount (fee included) returns to the available balance."""
    config = earnings_settings(WITHDRAWAL_MIN_USD="0.01")
    creator = await new_creator(db_pool, amount + Decimal("5"))
    row, _ = await request_withdrawal(db_pool, config, WithdrawalRequest(creator, amount, "ledger"))
    assert (await balances(db_pool, creator))["available_balance"] == Decimal("5")

    run = await process_payouts(
        db_pool, {"ledger": ScriptedProvider(creator, Declined(reason))}, config
    )

    assert run.failed >= 1
    failed = await withdrawal(db_pool, row["id"])
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == (reason.replace("\x00", "") or "refused")
    assert (await balances(db_pool, creator))["available_balance"] == amount + Decimal("5")
    # A failed withdrawal is final: nothing picks it up again.
    provider = ScriptedProvider()
    await process_payouts(db_pool, {"ledger": provider}, config)
    assert f"withdrawal-{row['id']}" not in provider.paid


async def test_twenty_parallel_withdrawals_never_spend_more_than_the_balance(
    db_pool: asyncpg.Pool,
) -> None:
    config = earnings_settings()
    creator = await new_creator(db_pool, Decimal("105.00"))
    requests = [WithdrawalRequest(creator, Decimal("10.00"), "ledger") for _ in range(20)]

    results = await asyncio.gather(
        *(request_withdrawal(db_pool, config, r) for r in requests), return_exceptions=True
    )

    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, WithdrawalRefused)]
    assert len(made) == 10
    assert len(refused) == 10
    assert all(r.reason == "insufficient_balance" for r in refused)
    assert (await balances(db_pool, creator))["available_balance"] == Decimal("5.00")
    total = await db_pool.fetchval(
        "SELECT sum(amount) FROM withdrawals WHERE creator_id = $1", creator
    )
    assert total == Decimal("100.00")


async def test_an_unknown_outcome_is_resolved_by_asking_never_by_paying_twice(
    db_pool: asyncpg.Pool,
) -> None:
    """The provider took the money but the answer never came (a timeout): the withdrawal stays
    in flight, the next attempt asks the provider, finds the payout and completes it."""
    config = dataclasses.replace(earnings_settings(), payout_retry_max_s=1.0)
    creator = await new_creator(db_pool, Decimal(50))
    row, _ = await request_withdrawal(
        db_pool, config, WithdrawalRequest(creator, Decimal(20), "ledger")
    )
    provider = ScriptedProvider(creator, PayoutOutcomeUnknown("read timed out"))

    first = await process_payouts(db_pool, {"ledger": provider}, config)
    assert first.unknown == 1
    in_flight = await withdrawal(db_pool, row["id"])
    assert in_flight["status"] == "processing"
    assert in_flight["last_error"] == "read timed out"
    assert (await balances(db_pool, creator))["available_balance"] == Decimal(30)

    await make_withdrawal_due(db_pool, row["id"])
    second = await process_payouts(db_pool, {"ledger": provider}, config)
    assert second.completed == 1
    done = await withdrawal(db_pool, row["id"])
    assert done["status"] == "completed"
    assert done["provider_reference"] == f"ref-{row['id']}"
    assert provider.pay_calls == 1  # asked, not paid again
    assert provider.find_calls == 1
    assert (await balances(db_pool, creator))["available_balance"] == Decimal(30)


async def test_a_worker_dying_mid_payout_is_resumed_after_its_lease(
    db_pool: asyncpg.Pool,
) -> None:
    """The worker leased the payout, the provider paid, and the worker died before recording
    it. Once the lease runs out another worker asks the provider and completes it once."""
    config = dataclasses.replace(earnings_settings(), payout_lease_s=1.0)
    creator = await new_creator(db_pool, Decimal(40))
    row, _ = await request_withdrawal(
        db_pool, config, WithdrawalRequest(creator, Decimal(40), "ledger")
    )
    provider = ScriptedProvider(creator)

    class Died(BaseException):
        pass

    class DiesAfterPaying(ScriptedProvider):
        async def pay(self, payout: Payout) -> PayoutOutcome:
            await provider.pay(payout)
            raise Died

    with pytest.raises(Died):
        await process_payouts(db_pool, {"ledger": DiesAfterPaying()}, config)
    assert (await withdrawal(db_pool, row["id"]))["status"] == "processing"
    # Within the lease nobody touches it.
    assert (await process_payouts(db_pool, {"ledger": provider}, config)).completed == 0
    await db_pool.execute(
        "UPDATE withdrawals SET next_attempt_at = now() - interval '1 second' WHERE id = $1",
        row["id"],
    )
    assert (await process_payouts(db_pool, {"ledger": provider}, config)).completed == 1
    assert provider.pay_calls == 1
    assert (await withdrawal(db_pool, row["id"]))["status"] == "completed"


async def test_the_ledger_provider_records_the_payout(db_pool: asyncpg.Pool) -> None:
    config = earnings_settings()
    creator = await new_creator(db_pool, Decimal(12))
    row, _ = await request_withdrawal(
        db_pool, config, WithdrawalRequest(creator, Decimal(12), "ledger")
    )
    await process_payouts(db_pool, {"ledger": LedgerPayouts()}, config)
    done = await withdrawal(db_pool, row["id"])
    assert (done["status"], done["provider_reference"]) == ("completed", f"ledger:{row['id']}")
    assert done["net_amount"] == Decimal("9.60")


async def test_a_repeated_idempotency_key_returns_the_first_withdrawal(
    db_pool: asyncpg.Pool,
) -> None:
    config = earnings_settings()
    creator = await new_creator(db_pool, Decimal(100))
    request = WithdrawalRequest(creator, Decimal(30), "ledger", request_key="retry-1")
    results = await asyncio.gather(
        *(request_withdrawal(db_pool, config, request) for _ in range(5))
    )
    assert len({row["id"] for row, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert (await balances(db_pool, creator))["available_balance"] == Decimal(70)
