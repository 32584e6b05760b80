"""Marketplace routes: public (listed in `control_plane.routes.PUBLIC_OPERATIONS`)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from control_plane.api import ApiRoute, Context, json_response
from control_plane.marketplace import service
from control_plane.marketplace.schemas import (
    AgentDetail,
    CategoryList,
    FeaturedList,
    FeaturedQuery,
    SearchPage,
    SearchPageV2,
    SearchQuery,
    to_v2,
)

# Public listings may be cached briefly by browsers and CDNs; nothing in them is per-user.
_PUBLIC_CACHE = {"Cache-Control": "public, max-age=30"}


def _public(content: Any) -> Response:
    return json_response(content, headers=_PUBLIC_CACHE)


async def marketplace_search(context: Context, query: SearchQuery) -> Response:
    return _public(await service.search(context.state, query))


async def marketplace_search_v2(context: Context, query: SearchQuery) -> Response:
    return _public(to_v2(await service.search(context.state, query)))


async def marketplace_agent(context: Context) -> Response:
    return _public(await service.agent_detail(context.state, context.path["agent_id"]))


async def marketplace_categories(context: Context) -> Response:
    return _public(await service.categories(context.state))


async def marketplace_featured(context: Context, query: FeaturedQuery) -> Response:
    return _public(await service.featured(context.state, query.limit))


PREFIX = "/api/v1/marketplace"
V2_SEARCH = "/api/v2/marketplace/agents"
# v1 search keeps working, answering with Deprecation/Sunset headers, until this date.
V1_SEARCH_SUNSET = "Sat, 01 May 2027 00:00:00 GMT"
ROUTES = [
    ApiRoute("GET", f"{PREFIX}/agents", marketplace_search,
             "Search active agents (v1 shape; deprecated: use /api/v2/marketplace/agents)",
             query=SearchQuery, response=SearchPage, tags=("marketplace",),
             sunset=V1_SEARCH_SUNSET, successor=V2_SEARCH),
    ApiRoute("GET", V2_SEARCH, marketplace_search_v2,
             "Search active agents: full text, category, price and rating filters, sorting",
             query=SearchQuery, response=SearchPageV2, tags=("marketplace",)),
    ApiRoute("GET", f"{PREFIX}/agents/{{agent_id}}", marketplace_agent,
             "Public detail of an active agent", response=AgentDetail, tags=("marketplace",)),
    ApiRoute("GET", f"{PREFIX}/categories", marketplace_categories,
             "Categories with their number of active agents", response=CategoryList,
             tags=("marketplace",)),
    ApiRoute("GET", f"{PREFIX}/featured", marketplace_featured,
             "Featured agents, then the most popular", query=FeaturedQuery,
             response=FeaturedList, tags=("marketplace",)),
]  # fmt: skip
