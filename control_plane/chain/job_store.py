"""The `chain_jobs` table (migrations 0011, 0015) as the chain outbox (outbox.py) uses it: a
lease on the due jobs, the signed transaction stored before it is broadcast, and each step's
outcome written back: confirmed (with the tx hash into agents / settlements / withdrawals in
the same transaction), failed (a payout's amount back to the creator in the same
transaction), or waiting with its backoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from common.db import DbConnection
from control_plane.chain.client import Receipt, SignedTx, token_id_of
from control_plane.chain.jobs import MINT_AGENT, PAY_WITHDRAWAL
from control_plane.earnings.withdrawals import complete, fail_and_refund_in

logger = logging.getLogger("agentlink.worker.chain")

_BATCH = 50


@dataclass(frozen=True, slots=True)
class ChainJob:
    id: int
    kind: str
    subject_id: str
    status: str
    attempts: int
    contract_address: str | None
    tx_hash: str | None
    tx_nonce: int | None
    signed_tx: bytes | None


@dataclass(frozen=True, slots=True)
class Wait:
    """Not done yet: try again after `delay_s` (None: the backoff for this attempt)."""

    reason: str
    delay_s: float | None = None


@dataclass(frozen=True, slots=True)
class Confirmed:
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


Step = Wait | Confirmed | Failed


async def claim(db: asyncpg.Pool, lease_s: float) -> list[ChainJob]:
    """The due jobs, leased for `lease_s` (taken over from a worker whose lease ran out), in
    id order."""
    rows = await db.fetch(
        """UPDATE chain_jobs SET locked_until = now() + make_interval(secs => $1),
                                 attempts = attempts + 1
           WHERE id IN (SELECT id FROM chain_jobs
                        WHERE status IN ('pending', 'sent') AND next_attempt_at <= now()
                          AND (locked_until IS NULL OR locked_until <= now())
                        ORDER BY next_attempt_at, id LIMIT $2
                        FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, subject_id::text, status, attempts, contract_address,
                     tx_hash, tx_nonce, signed_tx""",
        lease_s,
        _BATCH,
    )
    jobs = [
        ChainJob(
            row["id"],
            row["kind"],
            row["subject_id"],
            row["status"],
            row["attempts"],
            row["contract_address"],
            row["tx_hash"],
            None if row["tx_nonce"] is None else int(row["tx_nonce"]),
            row["signed_tx"],
        )
        for row in rows
    ]
    return sorted(jobs, key=lambda job: job.id)


async def store_signed(
    connection: DbConnection, job: ChainJob, signed: SignedTx, contract: str | None
) -> None:
    await connection.execute(
        """UPDATE chain_jobs SET status = 'sent', tx_hash = $2, tx_nonce = $3, signed_tx = $4,
                                 contract_address = $5
           WHERE id = $1""",
        job.id,
        signed.tx_hash,
        signed.nonce,
        signed.raw,
        contract,
    )


async def record_failed(db: asyncpg.Pool, job: ChainJob, reason: str) -> None:
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            """UPDATE chain_jobs SET status = 'failed', last_error = $2, locked_until = NULL
               WHERE id = $1""",
            job.id,
            reason[:1000],
        )
        if job.kind == PAY_WITHDRAWAL:
            await fail_and_refund_in(connection, job.subject_id, reason)
    logger.error(
        "chain job %d failed: %s", job.id, reason,
        extra={"event": "chain_failed", "kind": job.kind},
    )  # fmt: skip


async def record_wait(db: asyncpg.Pool, job: ChainJob, reason: str, delay_s: float) -> None:
    await db.execute(
        """UPDATE chain_jobs SET last_error = $2, locked_until = NULL,
                                 next_attempt_at = now() + make_interval(secs => $3)
           WHERE id = $1 AND status IN ('pending', 'sent')""",
        job.id,
        reason[:1000],
        delay_s,
    )


async def confirm(db: asyncpg.Pool, job: ChainJob, receipt: Receipt, contract: str | None) -> None:
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            """UPDATE chain_jobs SET status = 'confirmed', tx_hash = $2, block_number = $3,
                                     contract_address = $4, confirmed_at = now(),
                                     last_error = NULL, locked_until = NULL
               WHERE id = $1""",
            job.id,
            receipt.tx_hash,
            receipt.block_number,
            contract,
        )
        if job.kind == PAY_WITHDRAWAL:
            reference = receipt.tx_hash
            await complete(connection, job.subject_id, reference, tx_hash=receipt.tx_hash)
        elif job.kind == MINT_AGENT:
            await connection.execute(
                "UPDATE agents SET token_id = $2, token_tx_hash = $3 WHERE id = $1",
                job.subject_id,
                Decimal(token_id_of(job.subject_id)),
                receipt.tx_hash,
            )
        else:
            await connection.execute(
                "UPDATE settlements SET tx_hash = $2 WHERE id = $1",
                job.subject_id,
                receipt.tx_hash,
            )
    logger.info(
        "chain job %d confirmed", job.id,
        extra={"event": "chain_confirmed", "kind": job.kind, "tx_hash": receipt.tx_hash},
    )  # fmt: skip


async def forget_chain(db: asyncpg.Pool) -> int:
    """Start over on a new chain (a local node starts empty): every job back to pending and
    the chain's hashes and token ids cleared. Payouts that ended stay as they are: that money
    was paid (or refunded) and is never paid again; an open one is sent on the new chain.
    Returns how many jobs were reset."""
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            "UPDATE agents SET token_id = NULL, token_tx_hash = NULL WHERE token_id IS NOT NULL"
        )
        await connection.execute("UPDATE settlements SET tx_hash = NULL WHERE tx_hash IS NOT NULL")
        status = await connection.execute(
            """UPDATE chain_jobs SET status = 'pending', attempts = 0, next_attempt_at = now(),
                                     locked_until = NULL, last_error = NULL,
                                     contract_address = NULL, tx_hash = NULL, tx_nonce = NULL,
                                     signed_tx = NULL, block_number = NULL, confirmed_at = NULL
               WHERE kind <> $1 OR status IN ('pending', 'sent')""",
            PAY_WITHDRAWAL,
        )
    return int(status.split()[-1])
