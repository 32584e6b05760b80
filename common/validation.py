"""Checks and answers for what clients send, shared by both apps.

`invalid` is the one 400 `40002` for a field that fails a rule; `is_uuid` and
`canonical_uuid` read ids from paths and bodies (a malformed id is simply not found);
`money_text` writes an amount the way every API response spells money.
"""

from __future__ import annotations

import unicodedata
import uuid
from decimal import Decimal

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


def money_text(amount: Decimal) -> str:
    """A decimal string without exponent or trailing zeros: `0.01`, `10`, `0`."""
    return format(amount.normalize(), "f")
