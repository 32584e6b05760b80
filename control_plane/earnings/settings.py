"""Settings of the money-out domain: settlements, withdrawals and payouts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

from common.settings import (
    Environ,
    SettingsError,
    env_decimal,
    env_float,
    env_int,
    env_list,
)

PAYOUT_PROVIDER_NAMES = ("ledger", "stripe", "onchain")


def _percent(env: Environ, name: str, default: str) -> Decimal:
    value = env_decimal(env, name, default)
    if not Decimal(0) <= value <= Decimal(100) or value != value.quantize(Decimal("0.01")):
        raise SettingsError(f"{name} must be a percentage between 0 and 100 with two decimals")
    return value


@dataclass(frozen=True, slots=True)
class EarningsSettings:
    """
    | variable | default | meaning |
    |---|---|---|
    | `PLATFORM_FEE_PERCENT` | 20 | the platform's share of a settlement's gross revenue |
    | `SETTLEMENT_PERIOD_HOURS` | 24 | settlement period (UTC, aligned to 2000-01-01T00:00Z) |
    | `SETTLEMENT_GRACE_S` | 900 | a period is settled this long after it ends |
    | `SETTLEMENT_INTERVAL_S` | 300 | how often the worker looks for periods to settle |
    | `WITHDRAWAL_FEE_PERCENT` | 20 | fee taken from a withdrawal (net = amount - fee) |
    | `WITHDRAWAL_MIN_USD` | 10 | smallest withdrawal accepted |
    | `PAYOUT_PROVIDERS` | ledger | (`ledger`, `stripe`); the first is the default |
    | `PAYOUT_INTERVAL_S` | 5 | how often the worker sends pending payouts |
    | `PAYOUT_LEASE_S` | 120 | a payout in flight longer than this is resumed by another worker |
    | `PAYOUT_RETRY_MAX_S` | 3600 | longest wait between attempts on a payout of unknown outcome |
    """

    platform_fee_percent: Decimal
    settlement_period_hours: int
    settlement_grace_s: float
    settlement_interval_s: float
    withdrawal_fee_percent: Decimal
    withdrawal_min: Decimal
    payout_providers: tuple[str, ...]
    payout_interval_s: float
    payout_lease_s: float
    payout_retry_max_s: float

    @property
    def default_payout_provider(self) -> str:
        return self.payout_providers[0]

    @classmethod
    def from_env(cls, env: Environ | None = None) -> EarningsSettings:
        env = os.environ if env is None else env
        providers = env_list(env, "PAYOUT_PROVIDERS", ("ledger",))
        unknown = [name for name in providers if name not in PAYOUT_PROVIDER_NAMES]
        if unknown or not providers:
            raise SettingsError("PAYOUT_PROVIDERS is a comma list of: ledger, stripe")
        if "onchain" in providers:
            raise SettingsError("PAYOUT_PROVIDERS: the onchain provider is not available yet")
        minimum = env_decimal(env, "WITHDRAWAL_MIN_USD", "10")
        if minimum <= 0 or minimum != minimum.quantize(Decimal("0.01")):
            raise SettingsError("WITHDRAWAL_MIN_USD must be a positive amount in cents")
        period_hours = env_int(env, "SETTLEMENT_PERIOD_HOURS", 24, minimum=1)
        if period_hours > 24 * 31:
            raise SettingsError("SETTLEMENT_PERIOD_HOURS must be at most 744 (31 days)")
        return cls(
            platform_fee_percent=_percent(env, "PLATFORM_FEE_PERCENT", "20"),
            settlement_period_hours=period_hours,
            settlement_grace_s=env_float(env, "SETTLEMENT_GRACE_S", 900.0, minimum=0.0),
            settlement_interval_s=env_float(env, "SETTLEMENT_INTERVAL_S", 300.0, minimum=0.05),
            withdrawal_fee_percent=_percent(env, "WITHDRAWAL_FEE_PERCENT", "20"),
            withdrawal_min=minimum,
            payout_providers=tuple(dict.fromkeys(providers)),
            payout_interval_s=env_float(env, "PAYOUT_INTERVAL_S", 5.0, minimum=0.05),
            payout_lease_s=env_float(env, "PAYOUT_LEASE_S", 120.0, minimum=1.0),
            payout_retry_max_s=env_float(env, "PAYOUT_RETRY_MAX_S", 3600.0, minimum=1.0),
        )
