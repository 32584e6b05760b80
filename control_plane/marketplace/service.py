"""Marketplace search, detail, categories and featured agents. Public: no caller needed."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from common.errors import ApiError, ErrorCode
from common.validation import invalid, is_uuid
from control_plane.marketplace import repository
from control_plane.marketplace.pagination import (
    Parser,
    decode_cursor,
    encode_cursor,
    parse_datetime,
    parse_decimal,
    parse_float,
    parse_int,
    parse_uuid,
)
from control_plane.marketplace.schemas import (
    AgentDetail,
    AgentSummary,
    CategoryCount,
    CategoryList,
    FeaturedList,
    SearchPage,
    SearchQuery,
)
from control_plane.rows import from_row
from control_plane.state import ControlPlaneState

MAX_CATEGORIES = 500

# How each sort's cursor values are read back (the id comes last in every cursor).
_CURSOR_PARSERS: dict[str, tuple[Parser, ...]] = {
    "relevance": (parse_float, parse_uuid),
    "popular": (parse_int, parse_uuid),
    "rating": (parse_decimal, parse_int, parse_uuid),
    "price": (parse_decimal, parse_uuid),
    "newest": (parse_datetime, parse_uuid),
}


def _cursor_value(value: Any) -> str | int | float:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float):
        return value
    return str(value)


def summary(row: asyncpg.Record) -> AgentSummary:
    return from_row(AgentSummary, row)


def _search_from_query(query: SearchQuery) -> repository.Search:
    text = query.q.strip() if query.q is not None else None
    text = text or None
    min_price = Decimal(query.min_price) if query.min_price is not None else None
    max_price = Decimal(query.max_price) if query.max_price is not None else None
    if min_price is not None and max_price is not None and min_price > max_price:
        raise invalid("min_price", "min_price must not exceed max_price")
    min_rating = Decimal(query.min_rating) if query.min_rating is not None else None  # 0..5
    sort = query.sort or ("relevance" if text else "popular")
    if sort == "relevance" and text is None:
        sort = "popular"  # nothing to rank by without a query: the default order instead
    after = None
    if query.cursor is not None:
        after = decode_cursor(query.cursor, sort, _CURSOR_PARSERS[sort])
    return repository.Search(
        text=text,
        category=query.category,
        min_price=min_price,
        max_price=max_price,
        min_rating=min_rating,
        sort=sort,
        limit=query.limit,
        after=after,
    )


async def search(state: ControlPlaneState, query: SearchQuery) -> SearchPage:
    """Active agents matching every filter, in the requested order, one keyset page."""
    spec = _search_from_query(query)
    async with state.db.acquire() as connection:
        rows = await repository.search_agents(connection, spec)
    page, more = rows[: spec.limit], len(rows) > spec.limit
    next_cursor = None
    if more:
        last = page[-1]
        keys = [_cursor_value(last[column]) for column in repository.SORTS[spec.sort].columns]
        next_cursor = encode_cursor(spec.sort, [*keys, str(last["id"])])
    return SearchPage([summary(row) for row in page], spec.sort, next_cursor)


async def agent_detail(state: ControlPlaneState, agent_id: str) -> AgentDetail:
    if not is_uuid(agent_id):
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    async with state.db.acquire() as connection:
        row = await repository.agent_detail(connection, agent_id)
    if row is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    distribution = {str(star): count for star, count in enumerate(row["distribution"], 1)}
    return from_row(
        AgentDetail,
        row,
        rating_distribution=distribution,
        call_path=f"/proxy/v1/agents/{row['id']}/chat",
    )


async def categories(state: ControlPlaneState) -> CategoryList:
    async with state.db.acquire() as connection:
        rows = await repository.categories(connection, MAX_CATEGORIES)
    return CategoryList([CategoryCount(row["category"], row["agent_count"]) for row in rows])


async def featured(state: ControlPlaneState, limit: int) -> FeaturedList:
    async with state.db.acquire() as connection:
        rows = await repository.featured_agents(connection, limit)
    return FeaturedList([summary(row) for row in rows])
