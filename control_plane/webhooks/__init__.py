"""Developer webhooks: endpoints registered through the API, events written to a Postgres
outbox in the same transaction as the change they report (outbox.py), delivered by the worker
with signatures, retries and an SSRF guard (delivery.py, ssrf.py)."""
