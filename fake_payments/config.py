"""How a fake provider is set up: where its pages live, and where its webhooks go."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeConfig:
    # Base URL of the fake itself, for the hosted checkout URLs it hands out.
    public_url: str
    # Where signed events are POSTed (None: events are recorded but not sent). Settable after
    # start, so a test can start the fake before the app whose webhook URL it needs.
    webhook_url: str | None = None
    # Signing secrets; Stripe signs with each (several `v1` entries while rotating).
    webhook_secrets: tuple[str, ...] = ()
    # When set, only this API key is accepted; otherwise any key of the right shape.
    api_key: str | None = None
