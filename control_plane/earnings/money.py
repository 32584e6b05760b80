"""The arithmetic of money out, in one place: fees, periods, amounts. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Ledger precision (NUMERIC(20, 8)) and payout precision (cents).
LEDGER_QUANTUM = Decimal("0.00000001")
CENT = Decimal("0.01")
# Settlement periods are counted from this instant, so they are the same on every worker.
PERIOD_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
_HUNDRED = Decimal(100)


def settlement_fee(gross: Decimal, percent: Decimal) -> Decimal:
    """The platform's fee on `gross`, to the ledger's 8 decimals (half up); property 15 is
    net = gross - fee exactly."""
    return (gross * percent / _HUNDRED).quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_UP)


def withdrawal_fee(amount: Decimal, percent: Decimal) -> Decimal:
    """The fee on a withdrawal of `amount` (whole cents), in cents, half up (property 16)."""
    return (amount * percent / _HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)


def parse_cents(text: str) -> Decimal | None:
    """A positive amount in whole cents (`"12"`, `"12.5"`, `"12.50"`), or None."""
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value <= 0 or value != value.quantize(CENT):
        return None
    return value.quantize(CENT)


def period_end_at_or_before(moment: datetime, period_hours: int) -> datetime:
    """The latest period boundary not after `moment`."""
    period = timedelta(hours=period_hours)
    return PERIOD_ORIGIN + ((moment - PERIOD_ORIGIN) // period) * period


def period_end_after(moment: datetime, period_hours: int) -> datetime:
    """The end of the period that contains `moment`."""
    return period_end_at_or_before(moment, period_hours) + timedelta(hours=period_hours)
