"""Seed properties 9 (Version Preservation) and 11 (Price Validation) through the real API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.control_plane.agents.helpers import (
    agent_body,
    config,
    create_agent,
    creator_headers,
    full_config,
)
from tests.control_plane.api_client import assert_error

AGENTS = "/api/v1/agents"
PRICE_MIN = Decimal("0.001")  # the settings' defaults (AGENT_PRICE_MIN_USD / _MAX_USD)
PRICE_MAX = Decimal("100")
STEP = Decimal("0.000001")

near_bounds = st.sampled_from([PRICE_MIN, PRICE_MAX]).flatmap(
    lambda bound: st.integers(-3, 3).map(lambda steps: bound + steps * STEP)
)
prices = st.one_of(
    near_bounds,
    st.decimals(min_value=Decimal("-1"), max_value=Decimal("200"), places=6),
    st.decimals(min_value=Decimal("0"), max_value=Decimal("0.01"), places=6),
    st.sampled_from([Decimal(0), Decimal("1E+3"), Decimal("-0"), Decimal("1E-6")]),
)


def assert_price_answer(
    response: httpx.Response, success: int, price: Decimal, in_range: bool
) -> None:
    """In range: `success` with the price as sent; outside: 400 `40002` naming the field."""
    if in_range:
        assert response.status_code == success, response.text
        assert Decimal(response.json()["price_per_call"]) == price
    else:
        error = assert_error(response, 400, "40002")
        assert error["error"]["details"][0]["field"] == "price_per_call"


@settings(max_examples=60, deadline=None)
@given(price=prices, as_number=st.booleans())
async def test_property_11_price_validation(
    control_url: str, price: Decimal, as_number: bool
) -> None:
    """Property 11: Price Validation. A price is accepted exactly when it lies within
    [$0.001, $100]; outside, the answer is 400 `40002` naming `price_per_call`, and nothing is
    created. Creating and updating follow the same rule."""
    in_range = PRICE_MIN <= price <= PRICE_MAX
    wire: Any = str(price)
    async with httpx.AsyncClient(base_url=control_url) as client:
        headers = await creator_headers(client)
        if as_number:
            # A JSON number, written out exactly (httpx would send a float through repr).
            content = agent_body(price_per_call="__PRICE__")
            raw = httpx.Request("POST", "/", json=content).content.replace(
                b'"__PRICE__"', str(price).encode()
            )
            response = await client.post(
                AGENTS, headers={**headers, "content-type": "application/json"}, content=raw
            )
        else:
            response = await client.post(
                AGENTS, headers=headers, json=agent_body(price_per_call=wire)
            )
        assert_price_answer(response, 201, price, in_range)
        if not in_range:
            assert (await client.get(AGENTS, headers=headers)).json()["total"] == 0
        agent = await create_agent(client, headers)
        update = await client.put(
            f"{AGENTS}/{agent['id']}", headers=headers, json={"price_per_call": wire}
        )
        assert_price_answer(update, 200, price, in_range)
        if not in_range:
            current = (await client.get(f"{AGENTS}/{agent['id']}", headers=headers)).json()
            assert current["version"] == 1


# Any text a JSON body can carry: the API refuses NUL and lone surrogates with a 400.
prompts = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=200
).filter(lambda text: text.strip() != "")
config_patches = st.fixed_dictionaries(
    {},
    optional={
        "system_prompt": prompts,
        "model": st.sampled_from(["mock-model", "gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro"]),
        "provider": st.sampled_from(["openai", "anthropic", "google"]),
        "temperature": st.none() | st.floats(0, 2, allow_nan=False),
        "max_tokens": st.none() | st.integers(1, 128_000),
        "top_p": st.none() | st.floats(0, 1, allow_nan=False),
        "leak_guard": st.booleans(),
        "prompt_cache": st.booleans(),
        "knowledge": st.fixed_dictionaries(
            {}, optional={"top_k": st.integers(1, 50), "enabled": st.booleans()}
        ),
    },
)
updates = st.fixed_dictionaries(
    {},
    optional={
        "config": config_patches,
        "price_per_call": st.decimals(PRICE_MIN, PRICE_MAX, places=6).map(str),
        "name": st.text(alphabet="abcdefgh XYZ", min_size=1, max_size=30).filter(str.strip),
    },
).filter(bool)


def apply(expected: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The model: what the agent must look like after `update`."""
    result = {**expected, "config": {**expected["config"]}}
    if "name" in update:
        result["name"] = update["name"].strip()
    if "price_per_call" in update:
        result["price"] = Decimal(update["price_per_call"])
    patch = update.get("config", {})
    for name, value in patch.items():
        if name == "knowledge":
            result["config"]["knowledge"] = {**result["config"]["knowledge"], **value}
        else:
            result["config"][name] = value
    return result


@settings(max_examples=15, deadline=None)
@given(sequence=st.lists(updates, min_size=1, max_size=6))
async def test_property_9_version_preservation(
    control_url: str, sequence: list[dict[str, Any]]
) -> None:
    """Property 9: Version Preservation. Every update adds exactly one version; after any
    sequence of updates, versions 1..n are all retrievable, each with exactly the config,
    name and price it was made with, and the current one is the last."""
    async with httpx.AsyncClient(base_url=control_url) as client:
        headers = await creator_headers(client)
        created = await create_agent(client, headers, config=config())
        agent_id = created["id"]
        history = [
            {
                "name": created["name"],
                "price": Decimal(created["price_per_call"]),
                "config": full_config(created["config"]),
            }
        ]
        for number, update in enumerate(sequence, start=2):
            response = await client.put(f"{AGENTS}/{agent_id}", headers=headers, json=update)
            assert response.status_code == 200, response.text
            expected = apply(history[-1], update)
            body = response.json()
            assert body["version"] == number
            assert body["config"] == expected["config"]
            history.append(expected)
        listed = (await client.get(f"{AGENTS}/{agent_id}/versions", headers=headers)).json()
        assert [item["version"] for item in listed["items"]] == list(range(len(history), 0, -1))
        for number, expected in enumerate(history, start=1):
            version = await client.get(f"{AGENTS}/{agent_id}/versions/{number}", headers=headers)
            assert version.status_code == 200
            got = version.json()
            assert got["config"] == expected["config"]
            assert got["name"] == expected["name"]
            assert Decimal(got["price_per_call"]) == expected["price"]
            assert got["current"] is (number == len(history))
        current = (await client.get(f"{AGENTS}/{agent_id}", headers=headers)).json()
        assert current["version"] == len(history)
        assert current["config"] == history[-1]["config"]
