"""`record`: the frozen dataclass of the values built on every call, without its cost.

A frozen dataclass's `__init__` sets each field through `object.__setattr__` (~70 ns a field
on this box: ~850 ns for the 14 fields of an `Admission`), paid by every call for each of the
few records it builds. `hot_record` is, to mypy, a frozen slotted dataclass (assigning a field is
a type error, as before); at run time it is a slotted dataclass whose `__init__` stores its
fields directly, hashed and compared as the frozen one was. Only for records the gateway
builds per call; everything else stays `dataclass(frozen=True, slots=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def hot_record(cls: type[_T]) -> type[_T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
