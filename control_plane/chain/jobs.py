"""The chain jobs' vocabulary (migrations 0011 and 0015), shared by the outbox, the payout
provider that enqueues withdrawals and the metrics, none of which need the others."""

from __future__ import annotations

MINT_AGENT = "mint_agent"  # an agent's ERC-1155 token, on first publication (a trigger)
RECORD_SETTLEMENT = "record_settlement"  # a settlement's record (a trigger)
PAY_WITHDRAWAL = "pay_withdrawal"  # a withdrawal paid from the vault (the onchain provider)
JOB_KINDS = (MINT_AGENT, RECORD_SETTLEMENT, PAY_WITHDRAWAL)
JOB_STATUSES = ("pending", "sent", "confirmed", "failed")
OPEN_STATUSES = ("pending", "sent")

# A job waiting on its creator (no wallet yet, an invalid one) says so first: the lag metric
# (job_metrics.py) leaves those out, since nothing of ours holds them up.
WAITING_FOR_CREATOR = "waiting for the creator"
NO_WALLET = f"{WAITING_FOR_CREATOR}'s wallet address"
