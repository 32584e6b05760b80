"""Property 28: Multi-Version API Support, and Property 29: Deprecation Warning Headers.

The marketplace search exists as v1 (deprecated, with a Sunset date) and v2 (a new response
shape). Both answer the same questions correctly side by side; only v1 carries the
deprecation headers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control_plane.marketplace.agents import insert_agents, make_creator, retire

V1 = "/api/v1/marketplace/agents"
V2 = "/api/v2/marketplace/agents"


async def test_property_29_only_the_deprecated_version_says_so(
    client: httpx.AsyncClient,
) -> None:
    old = await client.get(V1, params={"limit": 1})
    new = await client.get(V2, params={"limit": 1})
    assert old.status_code == new.status_code == 200
    assert old.headers["deprecation"] == "true"
    assert old.headers["sunset"].endswith("GMT")
    assert V2 in old.headers["link"]
    assert 'rel="successor-version"' in old.headers["link"]
    assert "deprecation" not in new.headers
    assert "sunset" not in new.headers
    document = (await client.get("/openapi.json")).json()
    assert document["paths"][V1]["get"]["deprecated"] is True
    assert "deprecated" not in document["paths"][V2]["get"]


async def test_property_28_versions_answer_the_same_question_in_their_own_shape(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    category = f"cat-{uuid.uuid4().hex[:8]}"
    creator = await make_creator(db_pool, "Versioned Creator")
    agents = await insert_agents(db_pool, creator, [
        {"name": f"Versioned {i}", "description": "answers in two shapes", "category": category,
         "price": Decimal("0.01") * (i + 1), "status": "active", "total_calls": 10 * i,
         "rating_sum": 4 * i, "review_count": i, "featured": i == 0,
         "published_at": datetime(2026, 1, 1 + i, tzinfo=UTC)}
        for i in range(5)
    ])  # fmt: skip
    try:

        @settings(max_examples=15, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(
            sort=st.sampled_from(["popular", "rating", "price", "newest"]),
            limit=st.integers(1, 6),
            max_price=st.sampled_from([None, "0.02", "0.04"]),
        )
        def check(sort: str, limit: int, max_price: str | None) -> None:
            params: dict[str, str | int] = {"category": category, "sort": sort, "limit": limit}
            if max_price:
                params["max_price"] = max_price
            pending.append(params)

        pending: list[dict[str, str | int]] = []
        check()
        for params in pending:
            old = (await client.get(V1, params=params)).json()
            new = (await client.get(V2, params=params)).json()
            assert [a["id"] for a in old["agents"]] == [a["id"] for a in new["data"]]
            assert old["next_cursor"] == new["meta"]["next_cursor"]
            assert old["sort"] == new["meta"]["sort"]
            for v1_agent, v2_agent in zip(old["agents"], new["data"], strict=True):
                assert v2_agent["price"] == {
                    "amount": v1_agent["price_per_call"],
                    "currency": "USD",
                }
                assert v2_agent["rating"] == {"average": v1_agent["average_rating"],
                                              "count": v1_agent["review_count"]}  # fmt: skip
                assert v2_agent["creator"]["name"] == "Versioned Creator"
    finally:
        await retire(db_pool, agents)
