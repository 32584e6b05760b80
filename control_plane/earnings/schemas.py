"""Request and response bodies of the money-out routes. Money is a decimal string (USD)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from control_plane.chain.schemas import SettlementProof
from control_plane.schema_types import Moment, UuidText

Amount = Annotated[
    str,
    msgspec.Meta(pattern=r"^[0-9]{1,12}(\.[0-9]{1,2})?$", description="USD, whole cents"),
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class Balances(msgspec.Struct):
    pending_earnings: str  # gross revenue accrued, not yet settled
    pending_platform_fee: str  # what the platform fee would take of it today
    available_balance: str  # settled net revenue that can be withdrawn
    total_earnings: str  # lifetime settled net revenue
    withdrawals_in_flight: str  # requested, not yet paid or failed
    withdrawn: str  # paid out (amounts before the withdrawal fee)
    platform_fee_percent: str
    withdrawal_fee_percent: str
    withdrawal_minimum: str
    next_settlement_at: datetime  # when the current period is due to settle


class SettlementOut(msgspec.Struct):
    id: str
    creator_id: str
    period_start: datetime
    period_end: datetime
    calls: int
    gross: str
    platform_fee: str
    net: str
    fee_percent: str
    status: str
    settled_at: datetime | None
    created_at: datetime
    # Its record on chain (control_plane/chain/proofs.py); none with the chain off.
    proof: SettlementProof | None = None


class SettlementPage(msgspec.Struct):
    settlements: list[SettlementOut]
    next_cursor: str | None


class PageQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Limit = 50
    cursor: Cursor | None = None


class CreateWithdrawal(msgspec.Struct, forbid_unknown_fields=True):
    amount: Amount
    # Which payout provider pays it; the platform's default (PAYOUT_PROVIDERS) when left out.
    method: Literal["ledger", "stripe", "onchain"] | None = None


class WithdrawalOut(msgspec.Struct):
    id: str
    amount: str
    fee: str
    net_amount: str  # amount - fee: what is paid out
    status: str  # pending, processing, completed, failed
    method: str
    destination: str | None
    reference: str | None  # the provider's reference once paid
    tx_hash: str | None  # an on-chain payout's transaction (onchain)
    failure_reason: str | None
    attempts: int
    created_at: datetime
    completed_at: datetime | None


class WithdrawalPage(msgspec.Struct):
    withdrawals: list[WithdrawalOut]
    next_cursor: str | None


# -- admin -----------------------------------------------------------------------------------


class PendingCreator(msgspec.Struct):
    creator_id: str
    display_name: str | None
    calls: int
    gross: str
    estimated_fee: str
    estimated_net: str
    oldest_accrual: datetime
    newest_accrual: datetime
    due: bool  # settled by the next run (its period is over)


class PendingSettlements(msgspec.Struct):
    creators: list[PendingCreator]
    total_gross: str
    due_through: datetime  # periods ending at or before this are due
    next_cursor: str | None


class PendingQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Limit = 50
    cursor: Cursor | None = None


class TriggerSettlement(msgspec.Struct, forbid_unknown_fields=True):
    # Only this creator (default all); periods ending at or before `through` (default now).
    creator_id: UuidText | None = None
    through: Moment | None = None


class TriggerResult(msgspec.Struct):
    settlements: list[SettlementOut]
    through: datetime
    gross: str
    platform_fees: str
    net: str


class HistoryQuery(msgspec.Struct, forbid_unknown_fields=True):
    creator_id: UuidText | None = None
    from_: Moment | None = msgspec.field(default=None, name="from")
    to: Moment | None = None
    limit: Limit = 50
    cursor: Cursor | None = None
