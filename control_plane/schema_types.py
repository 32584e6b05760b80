"""Field types several domains' request schemas share, each saying in its JSON Schema what
the handlers accept (the OpenAPI document is built from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

# An instant with its offset. common.validation takes 1970-01-01 up to 9999-01-01 (UTC); the
# pattern keeps generated values inside that whatever their offset (years 1971 to 9998).
_YEARS_IN_RANGE = r"^(197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
Moment = Annotated[
    datetime,
    msgspec.Meta(
        tz=True, description="RFC 3339 with a timezone",
        extra_json_schema={"pattern": _YEARS_IN_RANGE},
    ),
]  # fmt: skip

# An id the handler reads as a UUID (a malformed one is 400 naming the field).
UuidText = Annotated[str, msgspec.Meta(max_length=64, extra_json_schema={"format": "uuid"})]


class PageQuery(msgspec.Struct):
    """A numbered page of a list: `page` from 1, `page_size` rows a page."""

    page: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20

    @property
    def offset(self) -> int:
        """The rows before this page."""
        return (self.page - 1) * self.page_size
