"""Payment settings: the quota packages on sale and the two providers, from the environment.

Every variable is documented in README.md ("Settings", payments) and `.env.example`. A
provider is on when its API key is set (and then needs its webhook secret); `STRIPE_API_BASE`
and `COINBASE_API_BASE` point at the real APIs by default and at `fake_payments` locally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from common.settings import (
    Environ,
    EnvSettings,
    SettingsError,
    env,
    env_int,
    env_list,
    env_str,
)

DEFAULT_PACKAGES = "starter:Starter:1000:10,pro:Pro:10000:80,enterprise:Enterprise:100000:500"
_PACKAGE_ID = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class QuotaPackage:
    id: str
    name: str
    units: int
    price_usd: Decimal

    @property
    def price_cents(self) -> int:
        return int(self.price_usd * 100)


def parse_packages(raw: str) -> tuple[QuotaPackage, ...]:
    packages: list[QuotaPackage] = []
    for item in (part.strip() for part in raw.split(",")):
        fields = item.split(":")
        if len(fields) != 4:
            raise SettingsError("PAYMENT_PACKAGES entries are id:Name:units:price_usd")
        package_id, name, units_text, price_text = (field.strip() for field in fields)
        if not _PACKAGE_ID.fullmatch(package_id):
            raise SettingsError("PAYMENT_PACKAGES ids are lowercase letters, digits, - and _")
        try:
            units, price = int(units_text), Decimal(price_text)
        except (ValueError, InvalidOperation):
            raise SettingsError(
                "PAYMENT_PACKAGES units must be integers, prices decimals"
            ) from None
        if units < 1 or not price.is_finite() or price <= 0 or price != price.quantize(_CENT):
            raise SettingsError("PAYMENT_PACKAGES needs units >= 1 and a price in whole cents")
        if not name or any(package.id == package_id for package in packages):
            raise SettingsError("PAYMENT_PACKAGES needs a name and unique ids")
        packages.append(QuotaPackage(package_id, name, units, price.quantize(_CENT)))
    return tuple(packages)


@dataclass(frozen=True, slots=True)
class StripeSettings:
    secret_key: str = field(repr=False)
    webhook_secrets: tuple[str, ...] = field(repr=False)
    api_base: str
    tolerance_s: int


@dataclass(frozen=True, slots=True)
class CoinbaseSettings:
    api_key: str = field(repr=False)
    webhook_secrets: tuple[str, ...] = field(repr=False)
    api_base: str


def _url(name: str, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise SettingsError("payment URLs must start with http:// or https://")
    return value


def _base(value: str) -> str:
    return _url("", value).rstrip("/")


@dataclass(frozen=True, slots=True)
class PaymentSettings(EnvSettings):
    stripe: StripeSettings | None  # None: not configured
    coinbase: CoinbaseSettings | None
    packages: tuple[QuotaPackage, ...] = env(
        "PAYMENT_PACKAGES", DEFAULT_PACKAGES, parse=lambda name, raw: parse_packages(raw)
    )
    success_url: str = env(
        "PAYMENT_SUCCESS_URL",
        "https://app.agentlink.io/billing/success?session_id={CHECKOUT_SESSION_ID}",
        parse=_url,
    )
    cancel_url: str = env(
        "PAYMENT_CANCEL_URL", "https://app.agentlink.io/billing/cancel", parse=_url
    )
    provider_timeout_s: float = env("PAYMENT_PROVIDER_TIMEOUT_S", 10.0, minimum=0.1)
    reconcile_interval_s: float = env("PAYMENT_RECONCILE_INTERVAL_S", 10.0, minimum=0.05)

    def package(self, package_id: str) -> QuotaPackage | None:
        return next((package for package in self.packages if package.id == package_id), None)

    @classmethod
    def derived(cls, env: Environ) -> dict[str, Any]:
        return {"stripe": _stripe(env), "coinbase": _coinbase(env)}


def _webhook_secrets(env: Environ, name: str, key_name: str) -> tuple[str, ...]:
    """A provider's webhook secrets (several while one is rotated), required with its key."""
    secrets = env_list(env, name, ())
    if not secrets:
        raise SettingsError(f"{name} is required with {key_name}")
    return secrets


def _stripe(env: Environ) -> StripeSettings | None:
    secret_key = env.get("STRIPE_SECRET_KEY", "")
    if not secret_key:
        return None
    return StripeSettings(
        secret_key=secret_key,
        webhook_secrets=_webhook_secrets(env, "STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY"),
        api_base=_base(env_str(env, "STRIPE_API_BASE", "https://api.stripe.com")),
        tolerance_s=env_int(env, "STRIPE_WEBHOOK_TOLERANCE_S", 300, minimum=1),
    )


def _coinbase(env: Environ) -> CoinbaseSettings | None:
    api_key = env.get("COINBASE_API_KEY", "")
    if not api_key:
        return None
    return CoinbaseSettings(
        api_key=api_key,
        webhook_secrets=_webhook_secrets(env, "COINBASE_WEBHOOK_SECRET", "COINBASE_API_KEY"),
        api_base=_base(env_str(env, "COINBASE_API_BASE", "https://api.commerce.coinbase.com")),
    )
