"""What a chain job puts on chain, read from its subject's row: a mint to the creator's wallet,
a settlement's record, or a withdrawal's payout; or why not now. The wallet is checked (seed
property 10) before anything is signed for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from control_plane.chain.client import (
    ChainClient,
    SettlementRecord,
    settlement_key,
    token_id_of,
    withdrawal_key,
)
from control_plane.chain.job_store import ChainJob, Failed, Wait
from control_plane.chain.jobs import MINT_AGENT, NO_WALLET, PAY_WITHDRAWAL, WAITING_FOR_CREATOR
from control_plane.creators.wallet import InvalidAddress, normalise_wallet_address

_AMOUNT_UNITS = Decimal(10) ** 8  # the contract stores amounts in 10**-8 USD


@dataclass(frozen=True, slots=True)
class Mint:
    creator: str
    token_id: int


@dataclass(frozen=True, slots=True)
class Payment:
    key: bytes
    recipient: str
    units: int


Target = Mint | SettlementRecord | Payment


def _wallet(raw: str | None) -> str | Wait:
    """A creator's wallet in its checksummed form, or why the job waits for them."""
    if raw is None:
        return Wait(NO_WALLET)
    try:
        return normalise_wallet_address(raw)
    except InvalidAddress as error:
        return Wait(f"{WAITING_FOR_CREATOR}: the wallet address is invalid ({error})")


async def target_of(db: asyncpg.Pool, client: ChainClient, job: ChainJob) -> Target | Wait | Failed:
    """What to put on chain for `job`, or why not now."""
    if job.kind == PAY_WITHDRAWAL:
        return await _payment(db, client, job)
    if job.kind == MINT_AGENT:
        row = await db.fetchrow(
            """SELECT u.wallet_address FROM agents a JOIN users u ON u.id = a.creator_id
               WHERE a.id = $1""",
            job.subject_id,
        )
    else:
        row = await db.fetchrow(
            """SELECT u.wallet_address, s.period_start, s.period_end, s.net_amount
               FROM settlements s JOIN users u ON u.id = s.creator_id WHERE s.id = $1""",
            job.subject_id,
        )
    if row is None:
        return Failed(f"the {job.kind.split('_')[1]} no longer exists")
    wallet = _wallet(row["wallet_address"])
    if isinstance(wallet, Wait):
        return wallet
    if job.kind == MINT_AGENT:
        return Mint(wallet, token_id_of(job.subject_id))
    return SettlementRecord(
        settlement_key(job.subject_id),
        wallet,
        int(row["period_start"].timestamp()),
        int(row["period_end"].timestamp()),
        int(row["net_amount"] * _AMOUNT_UNITS),
        0,
    )


async def _payment(db: asyncpg.Pool, client: ChainClient, job: ChainJob) -> Payment | Failed:
    """A withdrawal's payout: its net amount to the wallet copied when it was requested
    (a later wallet change never redirects it), only while the withdrawal is open."""
    row = await db.fetchrow(
        "SELECT status, net_amount, destination FROM withdrawals WHERE id = $1",
        job.subject_id,
    )
    if row is None:
        return Failed("the withdrawal no longer exists")
    if row["status"] not in ("pending", "processing"):
        return Failed(f"the withdrawal is {row['status']}, not open")
    if row["destination"] is None:
        return Failed("the withdrawal has no wallet to pay to")
    try:
        recipient = normalise_wallet_address(row["destination"])
    except InvalidAddress as error:
        return Failed(f"the withdrawal's wallet address is invalid ({error})")
    units = await client.token_units(row["net_amount"])
    return Payment(withdrawal_key(job.subject_id), recipient, units)
