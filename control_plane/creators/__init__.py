"""Creator accounts: the public profile and the payout wallet address."""
