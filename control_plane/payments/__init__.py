"""Money in: quota packages bought through Stripe Checkout or Coinbase Commerce.

checkout (service.py) → the provider's hosted page → a signed webhook (providers/) → one
Postgres transaction stores the event and credits the package once (ledger.py) → the Redis
balance and the user's tier follow (quota_sync.py), repaired by the worker's reconciler
(reconciler.py) after an outage. Refunds and disputes take units back from what is left.
"""
