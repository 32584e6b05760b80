"""Query parameters and response bodies of the marketplace routes.

What a listing shows is chosen column by column in the repository: nothing here can carry an
agent's config, prompt, key id or revenue, because no field for them exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

# Prices and ratings arrive as decimal strings and stay Decimal (never float) from here on.
PriceText = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9]{1,7}(\.[0-9]{1,6})?$", description="USD, e.g. 0.05")
]
RatingText = Annotated[
    str,
    msgspec.Meta(pattern=r"^([0-4](\.[0-9]{1,2})?|5(\.0{1,2})?)$", description="0 to 5, e.g. 4.5"),
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
SortOrder = Literal["relevance", "popular", "rating", "price", "newest"]


class SearchQuery(msgspec.Struct, forbid_unknown_fields=True):
    q: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    min_price: PriceText | None = None
    max_price: PriceText | None = None
    min_rating: RatingText | None = None
    # relevance (the default with `q`) | popular (the default without) | rating | price | newest
    sort: SortOrder | None = None
    limit: Limit = 20
    cursor: Cursor | None = None


class FeaturedQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 12


class AgentSummary(msgspec.Struct):
    id: str
    name: str
    description: str | None  # at most the first 500 characters in listings
    category: str | None
    price_per_call: str  # USD, exact decimal
    average_rating: float  # mean of approved ratings, rounded to 2 decimals; 0 with none
    review_count: int
    total_calls: int
    featured: bool
    published_at: datetime
    creator_id: str
    creator_name: str | None


class SearchPage(msgspec.Struct):
    agents: list[AgentSummary]
    sort: str
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last one


class AgentDetail(msgspec.Struct):
    id: str
    name: str
    description: str | None
    category: str | None
    price_per_call: str
    average_rating: float
    review_count: int
    # Approved reviews per star, "1".."5".
    rating_distribution: dict[str, int]
    total_calls: int
    featured: bool
    published_at: datetime
    creator_id: str
    creator_name: str | None
    creator_verified: bool
    call_path: str  # the gateway route that calls this agent


class CategoryCount(msgspec.Struct):
    category: str
    agent_count: int


class CategoryList(msgspec.Struct):
    categories: list[CategoryCount]


class FeaturedList(msgspec.Struct):
    agents: list[AgentSummary]


# --- API v2 (the v1 search stays, deprecated with a Sunset date, until clients move) -------


class Price(msgspec.Struct):
    amount: str  # exact decimal
    currency: str = "USD"


class Rating(msgspec.Struct):
    average: float
    count: int


class AgentSummaryV2(msgspec.Struct):
    id: str
    name: str
    description: str | None
    category: str | None
    price: Price
    rating: Rating
    total_calls: int
    featured: bool
    published_at: datetime
    creator: dict[str, str | None]


class PageMeta(msgspec.Struct):
    sort: str
    next_cursor: str | None


class SearchPageV2(msgspec.Struct):
    data: list[AgentSummaryV2]
    meta: PageMeta


def to_v2(page: SearchPage) -> SearchPageV2:
    return SearchPageV2(
        data=[
            AgentSummaryV2(
                id=agent.id,
                name=agent.name,
                description=agent.description,
                category=agent.category,
                price=Price(agent.price_per_call),
                rating=Rating(agent.average_rating, agent.review_count),
                total_calls=agent.total_calls,
                featured=agent.featured,
                published_at=agent.published_at,
                creator={"id": agent.creator_id, "name": agent.creator_name},
            )
            for agent in page.agents
        ],
        meta=PageMeta(page.sort, page.next_cursor),
    )
