"""Money out: creator earnings accrue from usage, settle per period, and are withdrawn through a
payout provider. See settlements.py (the late-arrival rule), withdrawals.py and payouts/."""
