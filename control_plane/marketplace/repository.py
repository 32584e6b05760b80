"""All SQL of the marketplace. Only active agents, and only their public columns.

Searches are built from fixed SQL fragments, one per filter that is present, with every
value a bound parameter: a query without a price filter carries no `$n IS NULL OR ...`
clause, so each shape gets a plan that can use the partial marketplace indexes (migration
0001) and the GIN index on `search_vector`. asyncpg caches one prepared statement per shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from common.db import DbConnection, fetch_all, fetch_optional

# Listings show a description's start; the detail shows all of it.
LISTING_DESCRIPTION_CHARS = 500
_RANK = "ts_rank(a.search_vector, query)"


@dataclass(frozen=True, slots=True)
class SortKey:
    """One listing order: its ORDER BY, the keyset predicate `after(key_params, id_param)`
    that selects rows strictly after a cursor, and the columns the cursor is made of."""

    order_by: str
    after: Callable[[list[str], str], str]
    columns: tuple[str, ...]
    needs_text: bool = False


SORTS: dict[str, SortKey] = {
    "relevance": SortKey(
        f"{_RANK} DESC, a.id",
        lambda k, i: f"({_RANK} < {k[0]} OR ({_RANK} = {k[0]} AND a.id > {i}))",
        ("rank",),
        needs_text=True,
    ),
    "popular": SortKey(
        "a.total_calls DESC, a.id",
        lambda k, i: f"(a.total_calls < {k[0]} OR (a.total_calls = {k[0]} AND a.id > {i}))",
        ("total_calls",),
    ),
    "rating": SortKey(
        "a.average_rating DESC, a.review_count DESC, a.id",
        lambda k, i: (
            f"(a.average_rating < {k[0]} OR (a.average_rating = {k[0]} AND "
            f"(a.review_count < {k[1]} OR (a.review_count = {k[1]} AND a.id > {i}))))"
        ),
        ("average_rating", "review_count"),
    ),
    "price": SortKey(
        "a.price_per_call, a.id",
        lambda k, i: f"((a.price_per_call, a.id) > ({k[0]}, {i}))",
        ("price_per_call",),
    ),
    "newest": SortKey(
        "a.published_at DESC, a.id",
        lambda k, i: f"(a.published_at < {k[0]} OR (a.published_at = {k[0]} AND a.id > {i}))",
        ("published_at",),
    ),
}


@dataclass(frozen=True, slots=True)
class Search:
    text: str | None
    category: str | None
    min_price: Decimal | None
    max_price: Decimal | None
    min_rating: Decimal | None
    sort: str
    limit: int
    after: list[Any] | None  # the cursor: the sort key's values, then the id


_SUMMARY_COLUMNS = f"""
    a.id, a.name, left(a.description, {LISTING_DESCRIPTION_CHARS}) AS description, a.category,
    a.price_per_call, a.average_rating, a.review_count, a.total_calls, a.featured,
    a.published_at, a.creator_id, p.display_name AS creator_name"""
_FROM = "agents a LEFT JOIN creator_profiles p ON p.user_id = a.creator_id"


async def search_agents(connection: DbConnection, search: Search) -> list[asyncpg.Record]:
    """Up to `search.limit + 1` rows (the extra one tells the caller a next page exists)."""
    params: list[Any] = []

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    sort = SORTS[search.sort]
    columns, source = _SUMMARY_COLUMNS, _FROM
    where = ["a.status = 'active'"]
    if search.text is not None:
        source += f" CROSS JOIN websearch_to_tsquery('english', {bind(search.text)}) AS query"
        columns += f", {_RANK} AS rank"
        where.append("a.search_vector @@ query")
    if search.category is not None:
        where.append(f"a.category = {bind(search.category)}")
    if search.min_price is not None:
        where.append(f"a.price_per_call >= {bind(search.min_price)}")
    if search.max_price is not None:
        where.append(f"a.price_per_call <= {bind(search.max_price)}")
    if search.min_rating is not None:
        where.append(f"a.average_rating >= {bind(search.min_rating)}")
    if search.after is not None:
        *keys, last_id = search.after
        where.append(sort.after([bind(key) for key in keys], bind(last_id) + "::uuid"))
    # Only fixed fragments are formatted in; every value above is a bound parameter.
    sql = (
        f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)} "  # noqa: S608
        f"ORDER BY {sort.order_by} LIMIT {bind(search.limit + 1)}"
    )
    return await fetch_all(connection, sql, *params)


async def agent_detail(connection: DbConnection, agent_id: str) -> asyncpg.Record | None:
    """An active agent's public columns and its approved-rating histogram, in one query."""
    return await fetch_optional(
        connection,
        """SELECT a.id, a.name, a.description, a.category, a.price_per_call, a.average_rating,
                  a.review_count, a.total_calls, a.featured, a.published_at, a.creator_id,
                  p.display_name AS creator_name, coalesce(p.verified, false) AS creator_verified,
                  ARRAY(SELECT count(r.id)
                        FROM generate_series(1, 5) AS star
                        LEFT JOIN reviews r ON r.agent_id = a.id AND r.status = 'approved'
                                           AND r.rating = star
                        GROUP BY star ORDER BY star) AS distribution
           FROM agents a LEFT JOIN creator_profiles p ON p.user_id = a.creator_id
           WHERE a.id = $1 AND a.status = 'active'""",
        agent_id,
    )


async def categories(connection: DbConnection, limit: int) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        """SELECT category, count(*) AS agent_count
           FROM agents WHERE status = 'active' AND category IS NOT NULL
           GROUP BY category ORDER BY agent_count DESC, category LIMIT $1""",
        limit,
    )


async def featured_agents(connection: DbConnection, limit: int) -> list[asyncpg.Record]:
    """Agents marked featured, newest first, topped up with the most called others."""
    featured: list[asyncpg.Record] = await connection.fetch(
        f"""SELECT {_SUMMARY_COLUMNS} FROM {_FROM}
            WHERE a.status = 'active' AND a.featured
            ORDER BY a.published_at DESC, a.id LIMIT $1""",  # noqa: S608 - constants only
        limit,
    )
    if len(featured) >= limit:
        return featured
    popular: list[asyncpg.Record] = await connection.fetch(
        f"""SELECT {_SUMMARY_COLUMNS} FROM {_FROM}
            WHERE a.status = 'active' AND NOT a.featured
            ORDER BY a.total_calls DESC, a.id LIMIT $1""",  # noqa: S608 - constants only
        limit - len(featured),
    )
    return featured + popular
