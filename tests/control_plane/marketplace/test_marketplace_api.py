"""The public marketplace over real HTTP: keyset paging through ties for every sort, agent
detail (only public fields, never the config), categories, featured, and input validation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.control_plane.api_client import assert_error
from tests.control_plane.marketplace.agents import (
    SECRET_PROMPT,
    ListedAgent,
    insert_agents,
    make_creator,
    retire,
)
from tests.factories import make_user

SEARCH = "/api/v1/marketplace/agents"
BASE_TIME = datetime.fromisoformat("2025-05-01T08:00:00+00:00")
SUMMARY_FIELDS = {
    "id", "name", "description", "category", "price_per_call", "average_rating",
    "review_count", "total_calls", "featured", "published_at", "creator_id", "creator_name",
}  # fmt: skip
DETAIL_FIELDS = SUMMARY_FIELDS | {"rating_distribution", "creator_verified", "call_path"}


def agent(token: str, index: int, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": f"Agent {index} {token}",
        "description": "A helpful agent",
        "category": f"cat-{token}",
        "price": Decimal("0.01"),
        "status": "active",
        "total_calls": 0,
        "rating_sum": 0,
        "review_count": 0,
        "featured": False,
        "published_at": BASE_TIME,
    }
    fields.update(overrides)
    return fields


@pytest_asyncio.fixture
async def tied(db_pool: asyncpg.Pool) -> AsyncIterator[tuple[str, list[ListedAgent]]]:
    """Ten active agents in one category whose sort keys collide in pairs and triples."""
    token = uuid.uuid4().hex[:10]
    creator = await make_creator(db_pool, f"Creator {token}")
    words = ["zephyrine", "zephyrine zephyrine", "zephyrine quorbal", "quorbal zephyrine"]
    agents = await insert_agents(db_pool, creator, [
        agent(token, index, total_calls=index % 3, price=(Decimal("0.01"), Decimal("2"))[index % 2],
              rating_sum=(index % 3) * 2 + 1 if index % 3 else 0, review_count=index % 3,
              published_at=BASE_TIME - timedelta(seconds=index % 2),
              description=f"Helps with {words[index % 4]}")
        for index in range(10)
    ])  # fmt: skip
    yield f"cat-{token}", agents
    await retire(db_pool, agents)


async def page_through(client: httpx.AsyncClient, params: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _ in range(100):  # bounded: a cursor bug must fail, not loop
        response = await client.get(SEARCH, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["agents"]
        if page["next_cursor"] is None:
            return rows
        params = {**params, "cursor": page["next_cursor"]}
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("sort", ["popular", "rating", "price", "newest", "relevance"])
@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_keyset_pages_through_ties_exactly_once_in_order(
    client: httpx.AsyncClient, tied: tuple[str, list[ListedAgent]], sort: str, limit: int
) -> None:
    category, agents = tied
    params = {"category": category, "sort": sort, "limit": str(limit)}
    if sort == "relevance":
        params["q"] = "zephyrine"
    rows = await page_through(client, params)
    ids = [row["id"] for row in rows]
    whole = await page_through(client, {**params, "limit": "100"})
    assert ids == [row["id"] for row in whole]  # pages concatenate to the single-page answer
    assert len(ids) == len(set(ids))
    if sort == "relevance":
        # Two occurrences of the word outrank one; ties are broken by id.
        assert set(ids) == {a.id for a in agents}
        return
    expected = sorted(agents, key=lambda a: {
        "popular": (-a.total_calls, a.id),
        "rating": (-a.average_rating, -a.review_count, a.id),
        "price": (a.price, a.id),
        "newest": (-a.published_at.timestamp(), a.id),
    }[sort])  # fmt: skip
    assert ids == [a.id for a in expected]


async def test_relevance_ranks_by_weight_and_frequency(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    token = uuid.uuid4().hex[:10]
    creator = await make_creator(db_pool, "Ranker")
    agents = await insert_agents(db_pool, creator, [
        agent(token, 0, description="mentions vindoro once"),
        agent(token, 1, name=f"Vindoro {token}", description="named after it"),
        agent(token, 2, description="no match here"),
    ])  # fmt: skip
    try:
        page = (
            await client.get(SEARCH, params={"q": "vindoro", "category": f"cat-{token}"})
        ).json()
        assert page["sort"] == "relevance"
        assert [row["id"] for row in page["agents"]] == [agents[1].id, agents[0].id]
        # websearch syntax: quoted phrases and exclusions.
        page = (await client.get(SEARCH, params={"q": "vindoro -named",
                                                 "category": f"cat-{token}"})).json()  # fmt: skip
        assert [row["id"] for row in page["agents"]] == [agents[0].id]
    finally:
        await retire(db_pool, agents)


async def test_listings_carry_only_public_fields(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    token = uuid.uuid4().hex[:10]
    creator = await make_creator(db_pool, f"Studio {token}")
    [listed] = await insert_agents(db_pool, creator, [
        agent(token, 0, description="x" * 800, price=Decimal("12.500000"), featured=True,
              rating_sum=9, review_count=2)
    ])  # fmt: skip
    try:
        response = await client.get(SEARCH, params={"category": f"cat-{token}"})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=30"
        [row] = response.json()["agents"]
        assert set(row) == SUMMARY_FIELDS
        assert row["price_per_call"] == "12.5"
        assert row["average_rating"] == 4.5
        assert row["creator_name"] == f"Studio {token}"
        assert len(row["description"]) == 500  # listings show the start of long descriptions

        detail = await client.get(f"{SEARCH}/{listed.id}")
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert set(body) == DETAIL_FIELDS
        assert len(body["description"]) == 800
        assert body["call_path"] == f"/proxy/v1/agents/{listed.id}/chat"
        assert body["creator_verified"] is False
        for text in (response.text, detail.text):
            assert SECRET_PROMPT not in text
            for secret in ("config", "key_id", "revenue", "encrypted", "token_id", "version"):
                assert secret not in text
    finally:
        await retire(db_pool, [listed])


async def test_detail_has_the_approved_rating_distribution(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    token = uuid.uuid4().hex[:10]
    [listed] = await insert_agents(db_pool, await make_creator(db_pool, "D"), [agent(token, 0)])
    for rating, status in [(5, "approved"), (5, "approved"), (2, "approved"), (1, "pending"),
                           (3, "rejected")]:  # fmt: skip
        await db_pool.execute(
            """INSERT INTO reviews (agent_id, user_id, rating, status, moderated_at)
               VALUES ($1, $2, $3, $4, CASE WHEN $4 <> 'pending' THEN now() END)""",
            listed.id, await make_user(db_pool), rating, status,
        )  # fmt: skip
    body = (await client.get(f"{SEARCH}/{listed.id}")).json()
    assert body["rating_distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 2}
    await retire(db_pool, [listed])


@pytest.mark.parametrize("status", ["draft", "inactive", "suspended"])
async def test_only_active_agents_have_a_public_detail(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, status: str
) -> None:
    token = uuid.uuid4().hex[:10]
    [hidden] = await insert_agents(db_pool, await make_creator(db_pool, "H"), [
        agent(token, 0, status=status)
    ])  # fmt: skip
    assert_error(await client.get(f"{SEARCH}/{hidden.id}"), 404, "40401")
    listing = (await client.get(SEARCH, params={"category": f"cat-{token}"})).json()
    assert listing["agents"] == []


@pytest.mark.parametrize("agent_id", ["nope", "00000000-0000-0000-0000-000000000000", "1" * 36])
async def test_unknown_agents_are_404(client: httpx.AsyncClient, agent_id: str) -> None:
    assert_error(await client.get(f"{SEARCH}/{agent_id}"), 404, "40401")


async def test_categories_count_active_agents(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    token = uuid.uuid4().hex[:10]
    agents = await insert_agents(db_pool, await make_creator(db_pool, "C"), [
        agent(token, 0, category=f"a-{token}"),
        agent(token, 1, category=f"a-{token}"),
        agent(token, 2, category=f"a-{token}", status="draft"),
        agent(token, 3, category=f"b-{token}"),
        agent(token, 4, category=f"c-{token}", status="inactive"),
    ])  # fmt: skip
    try:
        response = await client.get("/api/v1/marketplace/categories")
        assert response.status_code == 200
        counts = {row["category"]: row["agent_count"] for row in response.json()["categories"]}
        assert counts[f"a-{token}"] == 2
        assert counts[f"b-{token}"] == 1
        assert f"c-{token}" not in counts
        listed = [row["agent_count"] for row in response.json()["categories"]]
        assert listed == sorted(listed, reverse=True)
    finally:
        await retire(db_pool, agents)


async def test_featured_agents_come_first_then_the_most_popular(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    # The marketplace is shared with other tests: this test's agents are the newest featured
    # ones and the most called others by far, so they lead their part of the answer.
    future, calls = datetime.fromisoformat("2099-01-01T00:00:00+00:00"), 10**15
    token = uuid.uuid4().hex[:10]
    agents = await insert_agents(db_pool, await make_creator(db_pool, "F"), [
        agent(token, 0, featured=True, published_at=future),
        agent(token, 1, featured=True, published_at=future + timedelta(days=1)),
        agent(token, 2, featured=True, published_at=future + timedelta(days=2), status="draft"),
        agent(token, 3, total_calls=calls + 5),
        agent(token, 4, total_calls=calls + 50),
        agent(token, 5, total_calls=calls + 1, status="inactive"),
    ])  # fmt: skip
    try:
        body = (await client.get("/api/v1/marketplace/featured", params={"limit": "50"})).json()
        rows = body["agents"]
        flags = [row["featured"] for row in rows]
        assert flags == sorted(flags, reverse=True)  # every featured agent before the others
        featured = [row for row in rows if row["featured"]]
        assert [row["id"] for row in featured[:2]] == [agents[1].id, agents[0].id]
        stamps = [row["published_at"] for row in featured]
        assert stamps == sorted(stamps, reverse=True)
        popular = [row for row in rows if not row["featured"]]
        assert [row["id"] for row in popular[:2]] == [agents[4].id, agents[3].id]
        totals = [row["total_calls"] for row in popular]
        assert totals == sorted(totals, reverse=True)
        one = (await client.get("/api/v1/marketplace/featured", params={"limit": "1"})).json()
        assert [row["id"] for row in one["agents"]] == [agents[1].id]
        assert_error(await client.get("/api/v1/marketplace/featured?limit=51"), 400, "40002")
    finally:
        await retire(db_pool, agents)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"min_price": "abc"}, "min_price"),
        ({"min_price": "-1"}, "min_price"),
        ({"max_price": "1e3"}, "max_price"),
        ({"min_price": "5", "max_price": "1"}, "min_price"),
        ({"min_rating": "5.5"}, "min_rating"),
        ({"min_rating": "6"}, "min_rating"),
        ({"sort": "cheapest"}, "sort"),
        ({"q": "x" * 201}, "q"),
        ({"category": "x" * 51}, "category"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "WyJwcmljZSIsIjEiLCJ4Il0"}, "cursor"),  # ["price","1","x"]: not a uuid
        ({"colour": "red"}, "body"),
    ],
)
async def test_invalid_search_parameters_are_400(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    body = assert_error(await client.get(SEARCH, params=params), 400, "40002")
    assert body["error"]["details"][0]["field"] == field


async def test_a_cursor_only_continues_the_sort_it_came_from(
    client: httpx.AsyncClient, tied: tuple[str, list[ListedAgent]]
) -> None:
    category, _ = tied
    first = (await client.get(SEARCH, params={"category": category, "sort": "price",
                                              "limit": "2"})).json()  # fmt: skip
    wrong = await client.get(SEARCH, params={"category": category, "sort": "newest",
                                             "cursor": first["next_cursor"]})  # fmt: skip
    assert_error(wrong, 400, "40002")


@pytest.mark.parametrize(
    "q", ["'; DROP TABLE agents; --", "a & | ! ( ) :* <->", '"unterminated', "the", "   ", "ü🙂"]
)
async def test_any_search_text_is_safe(client: httpx.AsyncClient, q: str) -> None:
    response = await client.get(SEARCH, params={"q": q})
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["agents"], list)


async def test_public_routes_ignore_a_bad_token(client: httpx.AsyncClient) -> None:
    response = await client.get(SEARCH, headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 200
