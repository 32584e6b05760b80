"""Public pages: landing, marketplace search, agent detail, pricing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from common.errors import ApiError, ErrorCode
from control_plane.dashboard import snippets
from control_plane.dashboard.forms import blank_to_none, convert, form_errors
from control_plane.dashboard.pages import Page, PageContext
from control_plane.marketplace import service as marketplace
from control_plane.marketplace.schemas import SearchPage, SearchQuery
from control_plane.payments import service as payments
from control_plane.reviews import service as reviews
from control_plane.reviews.schemas import ReviewListQuery

SEARCH_FIELDS = ("q", "category", "min_price", "max_price", "min_rating", "sort")
SORTS = [("", "Best match / most popular"), ("popular", "Most popular"),
         ("rating", "Best rated"), ("price", "Lowest price"), ("newest", "Newest")]  # fmt: skip
PAGE_SIZE = 12


async def landing(ctx: PageContext) -> Response:
    featured = await marketplace.featured(ctx.state, 6)
    categories = await marketplace.categories(ctx.state)
    return ctx.render(
        "public/landing.html", featured=featured.agents, categories=categories.categories[:12]
    )


async def marketplace_search(ctx: PageContext) -> Response:
    values = {name: ctx.query.get(name, "").strip() for name in SEARCH_FIELDS}
    errors: dict[str, str] = {}
    results = SearchPage([], "popular", None)
    cursor = ctx.query.get("cursor") or None
    try:
        query: SearchQuery = convert(
            {**blank_to_none(values), "limit": PAGE_SIZE, "cursor": cursor}, SearchQuery
        )
        results = await marketplace.search(ctx.state, query)
    except ApiError as error:
        errors = form_errors(error, ErrorCode.VALIDATION_FAILED, ErrorCode.INVALID_REQUEST)
    categories = await marketplace.categories(ctx.state)
    filters = blank_to_none(values)
    next_url = None
    if results.next_cursor:
        next_url = "/marketplace?" + urlencode({**filters, "cursor": results.next_cursor})
    return ctx.render(
        "public/marketplace.html", values=values, errors=errors, agents=results.agents,
        categories=categories.categories, sorts=SORTS, next_url=next_url,
        first_url=("/marketplace?" + urlencode(filters)) if cursor else None,
        status=400 if errors else 200,
    )  # fmt: skip


async def agent_detail(ctx: PageContext) -> Response:
    agent_id = ctx.path["agent_id"]
    agent = await marketplace.agent_detail(ctx.state, agent_id)
    cursor = ctx.query.get("reviews") or None
    page = await reviews.list_reviews(
        ctx.state, agent.id, convert({"limit": 10, **({"cursor": cursor} if cursor else {})},
                                     ReviewListQuery),
    )  # fmt: skip
    gateway = ctx.dash.settings.gateway_public_url
    return ctx.render(
        "public/agent.html", agent=agent, reviews=page.reviews, next_reviews=page.next_cursor,
        snippets=snippets.for_agent(gateway, agent.id),
        endpoint=snippets.agent_endpoint(gateway, agent.id),
    )  # fmt: skip


def pricing_facts(ctx: PageContext) -> dict[str, Any]:
    api = ctx.state.settings
    return {
        "unit_price": api.unit_price,
        "free_quota": api.free_quota,
        "trial_calls": ctx.dash.settings.trial_calls,
        "price_min": api.price_min,
        "price_max": api.price_max,
    }


async def pricing(ctx: PageContext) -> Response:
    catalog = payments.packages(ctx.state)
    return ctx.render(
        "public/pricing.html",
        packages=catalog.packages,
        providers=catalog.providers,
        **pricing_facts(ctx),
    )


PAGES = [
    Page("GET", "/", landing),
    Page("GET", "/marketplace", marketplace_search),
    Page("GET", "/marketplace/{agent_id}", agent_detail),
    Page("GET", "/pricing", pricing),
]
