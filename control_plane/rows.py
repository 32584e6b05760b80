"""Response structs built from database rows by column name.

`from_row(AdminUser, record)` fills each field from the column of the same name; keyword
arguments give the fields that have no such column (renamed or computed). A column reaches a
field in the field's own type: a UUID as its canonical text, a NUMERIC amount as exact
decimal text (`money_text`) or as a float (an integer too), whichever the field declares.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
import uuid
from decimal import Decimal
from typing import Any, TypeVar, cast

import asyncpg
import msgspec

from common.validation import money_text

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    text: bool  # the field takes str (possibly among others): UUID and Decimal become text
    real: bool  # the field takes float: Decimal becomes float
    required: bool  # no default: the row must have the column


def _accepts(annotation: Any) -> set[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return set(typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Annotated:
        return _accepts(typing.get_args(annotation)[0])
    return {annotation}


@functools.cache
def _fields(cls: type[Any]) -> tuple[_Field, ...]:
    if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
        return tuple(
            _Field(
                info.name,
                str in _accepts(info.type),
                float in _accepts(info.type),
                info.required,
            )
            for info in msgspec.structs.fields(cls)
        )
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(
        _Field(
            field.name,
            str in _accepts(hints[field.name]),
            float in _accepts(hints[field.name]),
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(cls)
        if field.init
    )


def _convert(value: Any, field: _Field) -> Any:
    if field.text and isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal) and field.text:
        return money_text(value)
    if field.real and isinstance(value, Decimal | int) and not isinstance(value, bool):
        return float(value)
    return value


def from_row(cls: type[T], record: asyncpg.Record, **values: Any) -> T:
    """A `cls` (msgspec Struct or dataclass) from the row's columns; `values` win over them."""
    columns = set(record.keys())
    # A class is hashable; mypy cannot see it through functools.cache.
    for field in _fields(cast(Any, cls)):
        if field.name in values:
            continue
        if field.name in columns:
            values[field.name] = _convert(record[field.name], field)
        elif field.required:
            raise KeyError(f"{cls.__name__}.{field.name}: no such column and no value given")
    return cls(**values)
