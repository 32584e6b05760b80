"""The `onchain` payout provider: the withdrawal's net amount paid in a stablecoin from the
payout vault (contracts/AgentLinkPayouts.vy) to the creator's wallet, copied when the
withdrawal was requested.

It pays through the chain outbox (control_plane/chain/outbox.py), which already keeps the
promises a payout needs: the signed transaction is stored before it is broadcast, a worker
that dies is resolved by that hash or by the vault's record, and the vault refuses a second
payment of one withdrawal id, so a payout can never be paid twice. `pay` writes the
withdrawal's `pay_withdrawal` job (once: `UNIQUE (kind, subject_id)`) and answers with the
job's state: `InFlight` while the outbox works on it. The outbox writes the outcome itself in
the job's transaction (the withdrawal `completed` with the tx hash, or `failed` with the
amount back on the balance); `Paid` / `Declined` here are for a withdrawal looked at after
that.
"""

from __future__ import annotations

import asyncpg

from control_plane.chain.jobs import PAY_WITHDRAWAL
from control_plane.earnings.payouts.base import Declined, InFlight, Paid, Payout, PayoutOutcome


class OnchainPayouts:
    name = "onchain"

    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db

    async def pay(self, payout: Payout) -> PayoutOutcome:
        if not payout.destination:
            return Declined("no wallet address to pay to")
        await self._db.execute(
            """INSERT INTO chain_jobs (kind, subject_id) VALUES ($1, $2)
               ON CONFLICT (kind, subject_id) DO NOTHING""",
            PAY_WITHDRAWAL,
            payout.withdrawal_id,
        )
        found = await self.find(payout)
        assert found is not None  # the row was just written, or was there
        return found

    async def find(self, payout: Payout) -> PayoutOutcome | None:
        job = await self._db.fetchrow(
            """SELECT status, tx_hash, last_error FROM chain_jobs
               WHERE kind = $1 AND subject_id = $2""",
            PAY_WITHDRAWAL,
            payout.withdrawal_id,
        )
        if job is None:
            return None
        if job["status"] == "confirmed":
            return Paid(job["tx_hash"], tx_hash=job["tx_hash"])
        if job["status"] == "failed":
            return Declined(job["last_error"])
        return InFlight(f"on chain: {job['status']}, {job['last_error'] or 'queued'}")

    async def aclose(self) -> None:
        return None
