"""Fake Stripe and Coinbase Commerce servers for the local stack and the tests.

They answer the API calls AgentLink makes in each provider's real wire format (the official
`stripe` library accepts the fake's answers), keep everything they were sent (`GET
/_fake/requests`), serve a tiny hosted checkout page with a "Pay" button, and send real
signed webhooks back (`/_fake/...` control endpoints a test or a person clicks). Nothing here
is imported by the apps; `./dev up` runs them when no real keys are configured.

    python -m fake_payments stripe --port 9200 --webhook-url URL --webhook-secret whsec_...
    python -m fake_payments coinbase --port 9201 --webhook-url URL --webhook-secret SECRET
"""

from fake_payments.coinbase.app import FakeCoinbase, create_coinbase_app
from fake_payments.stripe.app import FakeStripe, create_stripe_app

__all__ = ["FakeCoinbase", "FakeStripe", "create_coinbase_app", "create_stripe_app"]
