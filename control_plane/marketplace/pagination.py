"""Opaque keyset cursors, shared by every listing that pages (marketplace, reviews, keys).

A cursor is the sort key of the last row a page returned, with the row id as tiebreaker,
as base64url JSON: `[kind, key..., id]`. The next page asks for rows strictly after it in
the listing's order, so pages neither skip nor repeat rows however the table changes between
requests, and deep pages cost what the first one does. Cursors are not signed: every value
goes to Postgres as a bound parameter, so a forged cursor can only move the starting point.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import orjson

from common.errors import ApiError
from common.validation import invalid, is_uuid, value_problem

Json = str | int | float | None
Row = TypeVar("Row")  # an asyncpg.Record, or a mapping
Parser = Callable[[Any], Any]

_MAX_CURSOR_CHARS = 512


def encode_cursor(kind: str, values: Sequence[Json]) -> str:
    raw = orjson.dumps([kind, *values])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def keyset_page(
    rows: Sequence[Row], limit: int, kind: str, key: str = "created_at"
) -> tuple[list[Row], str | None]:
    """The first `limit` of `rows` (fetched with one more, to know whether there are more),
    and the cursor after the last of them, `[kind, its key, its id]`, when there are."""
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    last: Any = page[-1]
    return page, encode_cursor(kind, [last[key].isoformat(), str(last["id"])])


def _invalid(message: str = "Invalid pagination cursor.") -> ApiError:
    return invalid("cursor", "Not a cursor from this listing", message)


def decode_cursor(raw: str, kind: str, parsers: Sequence[Parser]) -> list[Any]:
    """The cursor's values, each run through its parser; 400 `40002` when anything is off."""
    if len(raw) > _MAX_CURSOR_CHARS:
        raise _invalid()
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if not isinstance(decoded, list) or len(decoded) != len(parsers) + 1 or decoded[0] != kind:
        raise _invalid()
    try:
        values = [parse(value) for parse, value in zip(parsers, decoded[1:], strict=True)]
    except (TypeError, ValueError, InvalidOperation, OverflowError):
        raise _invalid() from None
    # Within what Postgres' bigint, numeric and timestamptz hold: a forged value is a 400.
    if any(value_problem(value) is not None for value in values):
        raise _invalid()
    return values


# Parsers for cursor values: each accepts exactly what encode_cursor wrote and raises otherwise.


def parse_uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return str(uuid.UUID(value))


def parse_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value


def parse_float(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError("expected a number")
    return float(value)


def parse_decimal(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError("expected a finite number")
    return number


def parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("expected a timezone")
    return moment


# Kept importable from here for code written before common/validation.py.
__all__ = ["is_uuid"]


# A page of rows newest first (ORDER BY created_at DESC, id) after the cursor's row; the
# query's own parameters are $1 (the owner) and $2 (the limit), the cursor's $3 and $4.
NEWEST_FIRST_AFTER = "AND (created_at < $3 OR (created_at = $3 AND id > $4::uuid))"


def newest_first_after(cursor: str | None, kind: str) -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters that continue a newest-first listing after
    `cursor` (none: from the start)."""
    if cursor is None:
        return "", []
    return NEWEST_FIRST_AFTER, decode_cursor(cursor, kind, (parse_datetime, parse_uuid))


def newest_first_cursor(kind: str, rows: Sequence[Any], limit: int) -> str | None:
    """The cursor after a page of `limit` rows, when the query's `limit + 1` found more."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(kind, [last["created_at"].isoformat(), str(last["id"])])
