"""What the payment routes need, built once in the app's lifespan: the configured providers
(each with its long-lived HTTP client) and the quota scripts."""

from __future__ import annotations

from dataclasses import dataclass

from common.redis_store import LuaScripts, RedisClient
from common.validation import invalid
from control_plane.payments.providers.base import PaymentProvider
from control_plane.payments.providers.coinbase_commerce import CoinbaseCommerce
from control_plane.payments.providers.stripe_checkout import StripeCheckout
from control_plane.payments.settings import PaymentSettings


@dataclass(slots=True)
class PaymentServices:
    settings: PaymentSettings
    providers: dict[str, PaymentProvider]
    scripts: LuaScripts

    @classmethod
    def build(cls, settings: PaymentSettings, redis: RedisClient) -> PaymentServices:
        providers: dict[str, PaymentProvider] = {}
        timeout = settings.provider_timeout_s
        if settings.stripe is not None:
            providers["stripe"] = StripeCheckout(settings.stripe, timeout_s=timeout)
        if settings.coinbase is not None:
            providers["coinbase"] = CoinbaseCommerce(settings.coinbase, timeout_s=timeout)
        return cls(settings, providers, LuaScripts(redis))

    def provider(self, name: str) -> PaymentProvider:
        """The provider, or 400: one this deployment does not offer is not a server fault
        (`GET /api/v1/payments/packages` lists the ones it does)."""
        provider = self.providers.get(name)
        if provider is None:
            raise invalid(
                "provider", "Not configured on this server",
                f"Payments through {name} are not offered here.",
            )  # fmt: skip
        return provider

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
