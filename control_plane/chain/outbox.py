"""The chain outbox: the worker turns `chain_jobs` (migrations 0011, 0015) into confirmed
transactions.

Kinds (jobs.py): `mint_agent` and `record_settlement` go to the registry, written by triggers
in the same transaction as the publication or the settlement; `pay_withdrawal` goes to the
payout vault, written by the `onchain` payout provider (earnings/payouts/onchain.py) when the
payout worker takes the withdrawal. Each run claims the due jobs (a lease, so two workers
never work on one job, and a dead worker's job is taken over) and moves each one step:

1. A job whose transaction is stored is resolved by looking that hash up: a receipt CHAIN_
   CONFIRMATIONS deep confirms it; a receipt not yet that deep, or a transaction the node holds
   but has not mined, waits.
2. Otherwise the chain itself is asked whether the work is done (the token minted, the record
   there, the withdrawal paid: the contracts refuse to do any of them twice): if so the job
   adopts the transaction that did it, found by its event. This covers a worker that died
   before it stored anything.
3. Otherwise the stored bytes are broadcast again (the same transaction, so at most one can
   ever be mined), unless the signer's nonce they used is spent by another transaction, in
   which case they can never be mined and a new transaction is signed.
4. A new transaction is signed under a Postgres advisory lock (one nonce sequence for every
   worker), stored with its hash BEFORE it is broadcast, then broadcast.

A chain that is down or refuses a request leaves the job where it is, retried with backoff up
to CHAIN_RETRY_MAX_S. `failed` is for what retrying cannot change (a mined transaction that
reverted, CHAIN_CONFIRMATIONS deep, while the work is still not done; a subject deleted; a
payout the vault refuses when it is estimated: too little in the vault, a wallet the
stablecoin blocks). Confirmation writes the tx hash (and the token id) into agents /
settlements / withdrawals (completed) in the same transaction as the job's status; a failed
payout fails its withdrawal and returns the amount to the creator's balance in the same
transaction too (issue 11's rule, property 32). A payout is never failed while the chain
shows it paid.

This module decides each step; what a job puts on chain is read in targets.py, and the
`chain_jobs` table is read and written in job_store.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import asyncpg

from control_plane.chain import job_store
from control_plane.chain.client import (
    ChainClient,
    ChainRejected,
    ChainReverted,
    ChainUnavailable,
    Receipt,
    SettlementRecord,
    SignedTx,
    settlement_key,
    token_id_of,
    withdrawal_key,
)
from control_plane.chain.job_store import ChainJob, Confirmed, Failed, Step, Wait
from control_plane.chain.jobs import MINT_AGENT, PAY_WITHDRAWAL
from control_plane.chain.settings import ChainSettings
from control_plane.chain.targets import Mint, Target, target_of

logger = logging.getLogger("agentlink.worker.chain")

# pg_advisory_lock key naming "the chain signer's nonce sequence" ("AGLKCHAN").
SIGNER_LOCK_KEY = 0x41474C4B_4348414E


def _held_up(job: ChainJob, contract: str | None) -> Wait | None:
    """Why a job cannot go to the contract configured now, if it cannot."""
    if contract is None:
        return Wait("CHAIN_PAYOUTS_ADDRESS is not set: on-chain payouts wait")
    if job.kind == PAY_WITHDRAWAL and job.contract_address not in (None, contract):
        # Signed for another vault (CHAIN_PAYOUTS_ADDRESS changed while it was in flight):
        # that vault may still pay it, so this one never does. An operator settles it
        # (docs/operations.md, AgentLinkChainJobsStuck).
        return Wait(f"signed for the vault {job.contract_address}, not {contract}")
    return None


def backoff_s(settings: ChainSettings, attempts: int) -> float:
    """Exponential from CHAIN_INTERVAL_S, capped at CHAIN_RETRY_MAX_S, jittered down by <= 1/2
    so workers that failed together do not retry together."""
    ceiling = min(settings.retry_max_s, settings.interval_s * 2.0 ** min(attempts, 30))
    return float(ceiling * random.uniform(0.5, 1.0))


class ChainOutbox:
    def __init__(self, db: asyncpg.Pool, client: ChainClient, settings: ChainSettings) -> None:
        self._db = db
        self._client = client
        self._settings = settings

    async def run_once(self) -> int:
        """Move every due job one step; returns how many were confirmed."""
        jobs = await job_store.claim(self._db, self._settings.lease_s)
        confirmed = 0
        for index, job in enumerate(jobs):
            try:
                step = await self._advance(job)
            except ChainUnavailable as error:
                # The node is down for every job: the rest wait with this one.
                for waiting in jobs[index:]:
                    await self._record(waiting, Wait(f"chain unavailable: {error}"))
                logger.warning(
                    "chain unavailable, %d jobs wait", len(jobs) - index,
                    extra={"event": "chain_unavailable", "count": len(jobs) - index},
                )  # fmt: skip
                break
            except ChainRejected as error:
                step = Wait(f"chain refused: {error}")
            await self._record(job, step)
            confirmed += isinstance(step, Confirmed)
        return confirmed

    # -- one step ------------------------------------------------------------------------------

    def _contract_of(self, job: ChainJob) -> str | None:
        """The contract the job's transaction goes to; None: not configured here."""
        if job.kind == PAY_WITHDRAWAL:
            return self._client.payouts_address
        return self._client.contract_address

    async def _advance(self, job: ChainJob) -> Step:
        client = self._client
        contract = self._contract_of(job)
        blocked = _held_up(job, contract)
        if blocked is not None:
            return blocked
        ours = job.contract_address is None or job.contract_address == contract
        if job.tx_hash is not None and ours:
            receipt = await client.receipt(job.tx_hash)
            if receipt is not None:
                return await self._judge(job, receipt)
            if await client.is_known(job.tx_hash):
                return Wait("sent, waiting for a block", self._settings.interval_s)
        done = await self._done_on_chain(job)
        if done is not None:
            return await self._depth(done)
        # Stored bytes whose nonce is still unspent can still be mined: send exactly them.
        if (
            ours
            and job.signed_tx is not None
            and job.tx_nonce is not None
            and job.tx_nonce >= await client.confirmed_nonce()
        ):
            await client.broadcast(job.signed_tx)
            return await self._after_broadcast(job.tx_hash)
        return await self._sign_and_send(job)

    async def _judge(self, job: ChainJob, receipt: Receipt) -> Step:
        if receipt.succeeded:
            return await self._depth(receipt)
        done = await self._done_on_chain(job)  # reverted: did another transaction do it?
        if done is not None:
            return await self._depth(done)
        # A revert is final only as deep as a success would be (a reorganisation could mine
        # the transaction again, succeeding): a payout failed too early could be paid as well.
        depth = await self._client.block_number() - receipt.block_number + 1
        if depth < self._settings.confirmations:
            return Wait(f"reverted, {depth} of {self._settings.confirmations} confirmations",
                        self._settings.interval_s)  # fmt: skip
        return Failed(f"transaction {receipt.tx_hash} reverted")

    async def _depth(self, receipt: Receipt) -> Step:
        depth = await self._client.block_number() - receipt.block_number + 1
        if depth >= self._settings.confirmations:
            return Confirmed(receipt)
        return Wait(
            f"{depth} of {self._settings.confirmations} confirmations", self._settings.interval_s
        )

    async def _done_on_chain(self, job: ChainJob) -> Receipt | None:
        """The receipt of the transaction that already did the job's work, if the chain has it."""
        client = self._client
        if job.kind == MINT_AGENT:
            token_id = token_id_of(job.subject_id)
            if await client.token(token_id) is None:
                return None
            found = await client.find_mint_tx(token_id)
        elif job.kind == PAY_WITHDRAWAL:
            key = withdrawal_key(job.subject_id)
            if await client.payment(key) is None:
                return None
            found = await client.find_payment_tx(key)
        else:
            key = settlement_key(job.subject_id)
            if await client.settlement(key) is None:
                return None
            found = await client.find_settlement_tx(key)
        if found is None:
            raise ChainRejected("the chain has the work done but no event of it")
        return found

    async def _after_broadcast(self, tx_hash: str | None) -> Step:
        receipt = None if tx_hash is None else await self._client.receipt(tx_hash)
        if receipt is None:
            return Wait("sent, waiting for a block", self._settings.interval_s)
        return await self._depth(receipt) if receipt.succeeded else Wait("reverted, checking")

    async def _sign_and_send(self, job: ChainJob) -> Step:
        target = await target_of(self._db, self._client, job)
        if isinstance(target, Wait | Failed):
            return target
        async with self._db.acquire() as connection:
            # One nonce sequence for the signer across workers: sign, store, send, in turn.
            await connection.execute("SELECT pg_advisory_lock($1)", SIGNER_LOCK_KEY)
            try:
                signed = await self._sign(target)
                if isinstance(signed, SignedTx):
                    await job_store.store_signed(connection, job, signed, self._contract_of(job))
                    await self._client.broadcast(signed.raw)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", SIGNER_LOCK_KEY)
        if isinstance(signed, ChainReverted):
            # The vault refuses this payout now (estimated at the latest block). Unless the
            # chain shows it paid after all, that is a decline: the withdrawal fails.
            done = await self._done_on_chain(job)
            if done is not None:
                return await self._depth(done)
            return Failed(f"the vault refused the payout: {signed}")
        logger.info(
            "chain job %d sent", job.id,
            extra={"event": "chain_sent", "kind": job.kind, "tx_hash": signed.tx_hash},
        )  # fmt: skip
        return await self._after_broadcast(signed.tx_hash)

    async def _sign(self, target: Target) -> SignedTx | ChainReverted:
        """The signed transaction, or why the vault refuses a payout (its estimate reverted)."""
        client = self._client
        if isinstance(target, SettlementRecord):
            return await client.sign_record(target)
        if isinstance(target, Mint):
            return await client.sign_mint(target.creator, target.token_id)
        try:
            return await client.sign_payment(target.key, target.recipient, target.units)
        except ChainReverted as error:
            return error

    # -- writes --------------------------------------------------------------------------------

    async def _record(self, job: ChainJob, step: Step) -> None:
        if isinstance(step, Confirmed):
            await job_store.confirm(self._db, job, step.receipt, self._contract_of(job))
        elif isinstance(step, Failed):
            await job_store.record_failed(self._db, job, step.reason)
        else:
            delay = (
                backoff_s(self._settings, job.attempts) if step.delay_s is None else step.delay_s
            )
            await job_store.record_wait(self._db, job, step.reason, delay)


async def run_chain_outbox(db: asyncpg.Pool, settings: ChainSettings, stop: asyncio.Event) -> None:
    """The worker's chain job: a run every CHAIN_INTERVAL_S until `stop`; with the chain off
    (no CHAIN_RPC_URL) it returns at once and the jobs wait in their table."""
    if not settings.enabled:
        return
    client = ChainClient(settings)
    outbox = ChainOutbox(db, client, settings)
    try:
        while not stop.is_set():
            try:
                await outbox.run_once()
            except Exception:
                logger.exception("chain outbox run failed", extra={"event": "chain_outbox"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.interval_s)
    finally:
        await client.aclose()
