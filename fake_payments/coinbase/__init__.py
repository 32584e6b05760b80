"""A fake Coinbase Commerce: charges (API, hosted page, confirm/fail/resolve controls) and its
signed webhooks."""
