"""Settings of the money-out domain: settlements, withdrawals and payouts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from common.settings import EnvSettings, SettingsError, env, parse_decimal, parse_list

PAYOUT_PROVIDER_NAMES = ("ledger", "stripe", "onchain")
_CENT = Decimal("0.01")


def _percent(name: str, raw: str) -> Decimal:
    value = parse_decimal(name, raw)
    if not Decimal(0) <= value <= Decimal(100) or value != value.quantize(_CENT):
        raise SettingsError(f"{name} must be a percentage between 0 and 100 with two decimals")
    return value


def _cents(name: str, raw: str) -> Decimal:
    value = parse_decimal(name, raw)
    if value <= 0 or value != value.quantize(_CENT):
        raise SettingsError(f"{name} must be a positive amount in cents")
    return value


def _providers(name: str, raw: str) -> tuple[str, ...]:
    providers = parse_list(raw)
    unknown = [provider for provider in providers if provider not in PAYOUT_PROVIDER_NAMES]
    if unknown or not providers:
        raise SettingsError(f"{name} is a comma list of: {', '.join(PAYOUT_PROVIDER_NAMES)}")
    return tuple(dict.fromkeys(providers))


@dataclass(frozen=True, slots=True)
class EarningsSettings(EnvSettings):
    """
    | variable | default | meaning |
    |---|---|---|
    | `PLATFORM_FEE_PERCENT` | 20 | the platform's share of a settlement's gross revenue |
    | `SETTLEMENT_PERIOD_HOURS` | 24 | settlement period (UTC, aligned to 2000-01-01T00:00Z) |
    | `SETTLEMENT_GRACE_S` | 900 | a period is settled this long after it ends |
    | `SETTLEMENT_INTERVAL_S` | 300 | how often the worker looks for periods to settle |
    | `WITHDRAWAL_FEE_PERCENT` | 20 | fee taken from a withdrawal (net = amount - fee) |
    | `WITHDRAWAL_MIN_USD` | 10 | smallest withdrawal accepted |
    | `PAYOUT_PROVIDERS` | ledger | (`ledger`, `stripe`, `onchain`); the first is the default |
    | `PAYOUT_INTERVAL_S` | 5 | how often the worker sends pending payouts |
    | `PAYOUT_LEASE_S` | 120 | a payout in flight longer than this is resumed by another worker |
    | `PAYOUT_RETRY_MAX_S` | 3600 | longest wait between attempts on a payout of unknown outcome |
    """

    platform_fee_percent: Decimal = env("PLATFORM_FEE_PERCENT", "20", parse=_percent)  # noqa: RUF009 - env() declares the field
    settlement_period_hours: int = env("SETTLEMENT_PERIOD_HOURS", 24, minimum=1, maximum=24 * 31)
    settlement_grace_s: float = env("SETTLEMENT_GRACE_S", 900.0, minimum=0.0)
    settlement_interval_s: float = env("SETTLEMENT_INTERVAL_S", 300.0, minimum=0.05)
    withdrawal_fee_percent: Decimal = env("WITHDRAWAL_FEE_PERCENT", "20", parse=_percent)  # noqa: RUF009 - env() declares the field
    withdrawal_min: Decimal = env("WITHDRAWAL_MIN_USD", "10", parse=_cents)  # noqa: RUF009 - env() declares the field
    payout_providers: tuple[str, ...] = env("PAYOUT_PROVIDERS", "ledger", parse=_providers)
    payout_interval_s: float = env("PAYOUT_INTERVAL_S", 5.0, minimum=0.05)
    payout_lease_s: float = env("PAYOUT_LEASE_S", 120.0, minimum=1.0)
    payout_retry_max_s: float = env("PAYOUT_RETRY_MAX_S", 3600.0, minimum=1.0)

    @property
    def default_payout_provider(self) -> str:
        return self.payout_providers[0]
