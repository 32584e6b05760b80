"""Property 20: Search Filter Accuracy, over real HTTP against real Postgres full-text search.

Each example lists a random set of agents (random words, category, price, rating, calls,
status, publication time; many ties, so the id tiebreaker matters) and searches with random
filters, sort and page size, following the cursor to the end. Every returned agent must be
active and satisfy every filter; the results must be in the requested order without repeats;
and, among this example's agents, exactly those matching all filters must come back, in
the order computed here independently.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control_plane.marketplace.agents import (
    ListedAgent,
    insert_agents,
    make_creator,
    retire,
)

SEARCH = "/api/v1/marketplace/agents"
# Made-up words: no English stem collides with them or with each other.
VOCAB = ("zephyrine", "quorbal", "maltrix", "vindoro")
PRICES = tuple(Decimal(text) for text in ("0.001", "0.01", "0.05", "1.5", "99.999999"))
RATINGS = ("0", "1", "2.5", "3", "4.67", "5")
BASE_TIME = datetime.fromisoformat("2025-06-01T12:00:00+00:00")


@st.composite
def agent_fields(draw: st.DrawFn) -> dict[str, Any]:
    review_count = draw(st.integers(0, 3))
    rating_sum = draw(st.sampled_from([review_count, 3 * review_count, 5 * review_count]))
    return {
        "words": draw(st.lists(st.sampled_from(VOCAB), max_size=4)),
        "category": draw(st.sampled_from([0, 0, 0, 1, 2, None])),
        "price": draw(st.sampled_from(PRICES)),
        "status": draw(st.sampled_from(["active"] * 6 + ["draft", "inactive", "suspended"])),
        "total_calls": draw(st.integers(0, 2)),
        "rating_sum": rating_sum,
        "review_count": review_count,
        "featured": draw(st.booleans()),
        "published_seconds_ago": draw(st.integers(0, 1)),
    }


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A population and a search over it. Filter values are drawn mostly from the
    population's own values, so results are seldom empty and boundaries (a price equal to
    min_price, an average equal to min_rating) are hit often."""
    population = draw(st.lists(agent_fields(), min_size=3, max_size=12))

    def maybe(own: list[Any], others: tuple[Any, ...]) -> Any:
        if draw(st.integers(0, 2)) == 0:  # a third of the time: this filter is set
            return draw(st.sampled_from(sorted(set(own)) or list(others)) | st.sampled_from(others))
        return None

    averages = [
        str((Decimal(a["rating_sum"]) / a["review_count"]).quantize(Decimal("0.01")))
        for a in population if a["review_count"]
    ]  # fmt: skip
    used = [a["category"] for a in population if a["category"] is not None]
    query = {
        "q": maybe([w for a in population for w in a["words"]], VOCAB),
        "category": draw(st.sampled_from([None, *used])) if used else None,
        "min_price": maybe([a["price"] for a in population], PRICES),
        "max_price": maybe([a["price"] for a in population], PRICES),
        "min_rating": maybe(averages, RATINGS),
        "sort": draw(st.sampled_from([None, "relevance", "popular", "rating", "price", "newest"])),
        "limit": draw(st.integers(1, 2)),
    }
    return population, query


def effective_sort(query: dict[str, Any]) -> str:
    if query["sort"] in (None, "relevance"):
        return "relevance" if query["q"] else "popular"
    return str(query["sort"])


def order_key(sort: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """Ascending key of the marketplace order (ties broken by id, as Postgres orders UUIDs)."""
    if sort == "popular":
        return (-row["total_calls"], row["id"])
    if sort == "rating":
        return (-Decimal(str(row["average_rating"])), -row["review_count"], row["id"])
    if sort == "price":
        return (Decimal(row["price_per_call"]), row["id"])
    if sort == "newest":
        return (-datetime.fromisoformat(row["published_at"]).timestamp(), row["id"])
    raise AssertionError(sort)


def satisfies(row: dict[str, Any], query: dict[str, Any], categories: list[str]) -> bool:
    price, rating = Decimal(row["price_per_call"]), Decimal(str(row["average_rating"]))
    text = f"{row['name']} {row['description']} {row['category']}".lower()
    return (
        (query["q"] is None or query["q"] in text)
        and (query["category"] is None or row["category"] == categories[query["category"]])
        and (query["min_price"] is None or price >= query["min_price"])
        and (query["max_price"] is None or price <= query["max_price"])
        and (query["min_rating"] is None or rating >= Decimal(query["min_rating"]))
    )


def as_row(agent: ListedAgent, creator_name: str) -> dict[str, Any]:
    """The listing a matching agent must produce."""
    return {
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "category": agent.category,
        "price_per_call": agent.price,
        "average_rating": agent.average_rating,
        "review_count": agent.review_count,
        "total_calls": agent.total_calls,
        "featured": agent.featured,
        "published_at": agent.published_at,
        "creator_name": creator_name,
    }


async def search_all(
    client: httpx.AsyncClient, params: dict[str, str]
) -> tuple[list[dict[str, Any]], str]:
    rows: list[dict[str, Any]] = []
    sort = ""
    for _ in range(1000):
        response = await client.get(SEARCH, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["agents"]) <= int(params["limit"])
        rows += page["agents"]
        sort = page["sort"]
        if page["next_cursor"] is None:
            return rows, sort
        assert page["agents"], "a page with a next cursor cannot be empty"
        params = {**params, "cursor": page["next_cursor"]}
    raise AssertionError("pagination did not end")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
async def test_property_20_search_filter_accuracy(
    control_url: str,
    db_pool: asyncpg.Pool,
    scenario: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    """Property 20: Search Filter Accuracy."""
    population, query = scenario
    token = uuid.uuid4().hex[:10]
    categories = [f"cat-{token}-{index}" for index in range(3)]
    creator_name = f"Creator {token}"
    creator_id = await make_creator(db_pool, creator_name)
    agents = await insert_agents(db_pool, creator_id, [
        {
            "name": f"Agent {index} {token}",
            "description": " ".join(["Helps", *fields["words"]]),
            "category": None if fields["category"] is None else categories[fields["category"]],
            "price": fields["price"],
            "status": fields["status"],
            "total_calls": fields["total_calls"],
            "rating_sum": fields["rating_sum"],
            "review_count": fields["review_count"],
            "featured": fields["featured"],
            "published_at": BASE_TIME - timedelta(seconds=fields["published_seconds_ago"]),
        }
        for index, fields in enumerate(population)
    ])  # fmt: skip
    try:
        params = {"limit": str(query["limit"])}
        for name in ("q", "min_price", "max_price", "min_rating", "sort"):
            if query[name] is not None:
                params[name] = str(query[name])
        if query["category"] is not None:
            params["category"] = categories[query["category"]]
        else:
            params["limit"] = "100"  # the whole marketplace matches: big pages
        async with httpx.AsyncClient(base_url=control_url) as client:
            if (
                query["min_price"] is not None
                and query["max_price"] is not None
                and query["min_price"] > query["max_price"]
            ):
                response = await client.get(SEARCH, params=params)
                assert response.status_code == 400, response.text
                assert response.json()["error"]["details"][0]["field"] == "min_price"
                return
            rows, sort = await search_all(client, params)

            if int(params["limit"]) < 100:  # keyset pages concatenate to the one-page answer
                whole, _ = await search_all(client, {**params, "limit": "100"})
                assert [row["id"] for row in rows] == [row["id"] for row in whole]

        assert sort == effective_sort(query)
        ids = [row["id"] for row in rows]
        assert len(ids) == len(set(ids)), "an agent was listed twice"
        inactive = {agent.id for agent in agents if agent.status != "active"}
        assert not inactive & set(ids), "a non-active agent was listed"
        for row in rows:
            assert satisfies(row, query, categories), (row, query)
        if sort != "relevance":
            keys = [order_key(sort, row) for row in rows]
            assert keys == sorted(keys), "results out of order"

        # Completeness and exactness, on this example's agents.
        expected = [
            as_row(agent, creator_name) for agent in agents
            if agent.status == "active" and satisfies(
                {**as_row(agent, creator_name), "average_rating": agent.average_rating,
                 "price_per_call": str(agent.price)}, query, categories)
        ]  # fmt: skip
        mine = {agent.id for agent in agents}
        returned = [row for row in rows if row["id"] in mine]
        assert {row["id"] for row in returned} == {row["id"] for row in expected}
        by_id = {row["id"]: row for row in expected}
        for row in returned:
            want = by_id[row["id"]]
            assert Decimal(row["price_per_call"]) == want["price_per_call"]
            assert Decimal(str(row["average_rating"])) == want["average_rating"]
            assert datetime.fromisoformat(row["published_at"]) == want["published_at"]
            for name in ("name", "description", "category", "review_count", "total_calls",
                         "featured", "creator_name"):  # fmt: skip
                assert row[name] == want[name], name
            assert row["creator_id"] == creator_id
    finally:
        await retire(db_pool, agents)
