"""From an HTML form to the services' own request types, and their errors back onto fields.

Forms are converted with msgspec exactly as the API decodes JSON (same types, same limits),
so a page can accept nothing the API would refuse. Errors come back as a `{field: message}`
map for the template to show next to each input.
"""

from __future__ import annotations

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


def field_errors(error: ApiError, *, rename: dict[str, str] | None = None) -> Errors:
    """An ApiError as messages per form field; "form" holds what belongs to no field."""
    rename = rename or {}
    errors: Errors = {}
    if error.code is ErrorCode.VALIDATION_FAILED and isinstance(error.details, list):
        for item in error.details:
            if isinstance(item, dict) and "field" in item:
                name = str(item["field"]).rsplit(".", 1)[-1]
                errors[rename.get(name, name)] = str(item.get("message", "Invalid value"))
    if not errors:
        errors["form"] = error.message
    return errors


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
