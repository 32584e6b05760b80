"""From an HTML form to the services' own request types, and their errors back onto fields.

Forms are converted with msgspec exactly as the API decodes JSON (same types, same limits),
so a page can accept nothing the API would refuse. Errors come back as a `{field: message}`
map for the template to show next to each input.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from common.errors import ApiError, ErrorCode
from control_plane.api import decode_query

Errors = dict[str, str]


def blank_to_none(values: dict[str, Any]) -> dict[str, Any]:
    """Optional fields left empty in a form mean "not given"."""
    return {name: value for name, value in values.items() if value not in ("", None)}


def convert(values: dict[str, Any], kind: type[Any]) -> Any:
    """`values` as `kind`, or ApiError 400 `40002` naming the field (as the API answers)."""
    return decode_query(values, kind)


_PLAIN_WORDS = [
    (re.compile(r"^Expected `str` matching regex .*$"), "This is not in the expected format."),
    (re.compile(r"^Expected `(float|int)`, got `str`$"), "Enter a number."),
    (re.compile(r"^Invalid decimal string$"), "Enter a number such as 0.05."),
    (re.compile(r"^Expected `str` of length >= 1$"), "This cannot be empty."),
    (re.compile(r"^Expected `str` of length <= (\d+)$"), r"Use at most \1 characters."),
    (re.compile(r"^Expected `float` ([<>]=?) (.+)$"), r"Expected a number \1 \2."),
    (re.compile(r"^Expected `int` ([<>]=?) (.+)$"), r"Expected a whole number \1 \2."),
    (re.compile(r"^Object missing required field .*$"), "This is required."),
]


_MISSING = re.compile(r"^Object missing required field `([a-z_]+)`")


def plain(message: str) -> str:
    """A validator's message in words for people (msgspec speaks of `str` and regexes)."""
    for pattern, replacement in _PLAIN_WORDS:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


def form_errors(error: ApiError, *codes: ErrorCode, rename: dict[str, str] | None = None) -> Errors:
    """A form refused with one of `codes`: its messages per field, for the form shown again.
    Any other error is not about what was typed: it is raised again, for the error page."""
    if error.code not in codes:
        raise error
    return field_errors(error, rename=rename)


def field_errors(error: ApiError, *, rename: dict[str, str] | None = None) -> Errors:
    """An ApiError as messages per form field; "form" holds what belongs to no field."""
    rename = rename or {}
    errors: Errors = {}
    if error.code is ErrorCode.VALIDATION_FAILED and isinstance(error.details, list):
        for item in error.details:
            if isinstance(item, dict) and "field" in item:
                message = str(item.get("message", "Invalid value"))
                name = str(item["field"]).rsplit(".", 1)[-1]
                missing = _MISSING.match(message)
                if missing:  # msgspec names the missing field in the message, not the path
                    name = missing.group(1)
                errors[rename.get(name, name)] = plain(message)
    if not errors:
        errors["form"] = error.message
    return errors


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
