"""Checks and answers for what clients send, shared by both apps.

`invalid` is the one 400 `40002` for a field that fails a rule; `is_uuid` and
`canonical_uuid` read ids from paths and bodies (a malformed id is simply not found);
`money_text` writes an amount the way every API response spells money.
"""

from __future__ import annotations

import math
import unicodedata
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import msgspec

from common.errors import ApiError, ErrorCode


def invalid(field: str, message: str, summary: str | None = None) -> ApiError:
    """400 `40002` naming the field and what is wrong with it."""
    return ApiError(
        ErrorCode.VALIDATION_FAILED, summary, details=[{"field": field, "message": message}]
    )


def is_uuid(text: str) -> bool:
    """Whether `text` is a UUID written with its 36 characters (what ids must be)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def canonical_uuid(text: str) -> str | None:
    """The UUID in its one canonical spelling (lower-case, hyphenated), or None."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def has_control_characters(text: str, *, allow_newlines: bool = False) -> bool:
    allowed = {"\n", "\r", "\t"} if allow_newlines else set()
    return any(unicodedata.category(char) == "Cc" and char not in allowed for char in text)


def shown_name(field: str, raw: str) -> str:
    """A name others see (an agent's, a creator's): trimmed, 1 to 100 characters, no control
    characters; else 400 `40002` naming `field`."""
    name = raw.strip()
    if not 1 <= len(name) <= 100:
        raise invalid(field, "Expected 1 to 100 characters besides surrounding spaces.")
    if has_control_characters(name):
        raise invalid(field, "Control characters are not allowed.")
    return name


def money_text(amount: Decimal) -> str:
    """A decimal string without exponent or trailing zeros: `0.01`, `10`, `0` (never `-0`)."""
    return format(amount.normalize(), "f") if amount else "0"


# --- what every decoded input must satisfy before it reaches Postgres or a provider --------
#
# Postgres refuses a NUL byte in text and a lone UTF-16 surrogate cannot be encoded at all;
# bigint, numeric and timestamptz have ranges narrower than Python's int, Decimal and
# datetime; and a serializer gives up on deep nesting. Each would surface as a 500 deep in a
# handler, so every decoded body, query and path parameter passes `check_decoded` first.

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Instants outside these are no real query (and leave a year of room for range arithmetic
# before Python's datetime itself overflows).
EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(9999, 1, 1, tzinfo=UTC)
MAX_DECIMAL_EXPONENT = 30  # numeric columns hold far less; 1e999999 is not a price
MAX_NESTING = 32  # JSON depth any request body may reach (the deepest real one is ~6)


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (a NUL byte, a lone surrogate), or None when it can."""
    if "\x00" in text:
        return "must not contain a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def check_text(field: str, text: str, *, max_length: int | None = None) -> str:
    """`text` unchanged when it is storable text of at most `max_length` characters, else 400."""
    problem = text_problem(text)
    if problem is None and max_length is not None and len(text) > max_length:
        problem = f"must be at most {max_length} characters"
    if problem is not None:
        raise invalid(field, problem)
    return text


def value_problem(value: object) -> str | None:
    """Why a decoded scalar cannot be stored (see check_decoded), or None."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool):
        fits = True
    elif isinstance(value, int):
        fits = INT64_MIN <= value <= INT64_MAX
    elif isinstance(value, float):
        fits = math.isfinite(value)
    elif isinstance(value, Decimal):
        fits = value.is_finite() and abs(value.adjusted()) <= MAX_DECIMAL_EXPONENT
    elif isinstance(value, datetime):
        # Naive instants are refused by their declared type where it matters.
        fits = value.tzinfo is None or EARLIEST_MOMENT <= value < LATEST_MOMENT
    elif isinstance(value, date):
        fits = EARLIEST_MOMENT.date() <= value < LATEST_MOMENT.date()
    else:
        fits = True
    return None if fits else "is out of range"


def check_decoded(value: object, field: str = "body", *, depth: int = 0) -> None:
    """Raise 400 `40002` naming the first field of `value` (a decoded body, query or path
    value: msgspec Structs, lists, dicts and scalars) that could not be stored or forwarded:
    text with NUL or lone surrogates, integers beyond int64, non-finite or huge numbers,
    instants outside [1970, 9999), nesting deeper than MAX_NESTING."""
    if depth > MAX_NESTING:
        raise invalid(field, f"nests deeper than {MAX_NESTING} levels")
    if isinstance(value, msgspec.Struct):
        for info in msgspec.structs.fields(value):
            item = getattr(value, info.name)
            check_decoded(item, _join(field, info.encode_name), depth=depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            check_decoded(item, f"{field}[{index}]", depth=depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_decoded(key, field, depth=depth + 1)
            check_decoded(item, _join(field, str(key)), depth=depth + 1)
    else:
        problem = value_problem(value)
        if problem is not None:
            raise invalid(field, problem)


def _join(field: str, name: str) -> str:
    return name if field in ("body", "query", "") else f"{field}.{name}"
