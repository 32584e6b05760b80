"""The creator's profile and wallet over real HTTP (seed property 10 through the API)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.creators.wallet import checksum_address
from tests.control_plane.api_client import assert_error, bearer, register
from tests.control_plane.creators.test_wallet import addresses, oracle_accepts


async def creator(client: httpx.AsyncClient) -> dict[str, str]:
    session = await register(client, "creator")
    return bearer(session["access_token"])


async def test_get_me_returns_the_profile(client: httpx.AsyncClient) -> None:
    session = await register(client, "creator")
    response = await client.get("/api/v1/creators/me", headers=bearer(session["access_token"]))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == session["user"]["id"]
    assert me["email"] == session["user"]["email"]
    assert me["display_name"] == session["user"]["email"].split("@")[0]
    assert me["bio"] is None
    assert me["avatar_url"] is None
    assert me["wallet_address"] is None
    assert me["verified"] is False
    assert me["total_earnings"] == "0"
    assert me["pending_earnings"] == "0"


async def test_update_is_partial_and_null_clears(client: httpx.AsyncClient) -> None:
    headers = await creator(client)
    first = await client.put(
        "/api/v1/creators/me",
        headers=headers,
        json={
            "display_name": "  Ada Lovelace ",
            "bio": "Analytical\nengines.",
            "avatar_url": "https://cdn.example.test/ada.png",
        },
    )
    assert first.status_code == 200, first.text
    assert first.json()["display_name"] == "Ada Lovelace"
    assert first.json()["bio"] == "Analytical\nengines."
    second = await client.put("/api/v1/creators/me", headers=headers, json={"bio": None})
    body = second.json()
    assert body["bio"] is None
    assert body["display_name"] == "Ada Lovelace"
    assert body["avatar_url"] == "https://cdn.example.test/ada.png"
    again = await client.get("/api/v1/creators/me", headers=headers)
    assert again.json() == body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"display_name": "   "}, "display_name"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"display_name": "tab\there"}, "display_name"),
        ({"display_name": None}, "display_name"),
        ({"bio": "b" * 5001}, "bio"),
        ({"bio": "bell\x07"}, "bio"),
        ({"avatar_url": "ftp://example.test/a.png"}, "avatar_url"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"avatar_url": "https://"}, "avatar_url"),
        ({"avatar_url": "https://a.test/" + "x" * 2048}, "avatar_url"),
        ({"avatar_url": "https://a.test/with space"}, "avatar_url"),
        ({"avatar_url": 42}, "avatar_url"),
        ({"verified": True}, "body"),
        ({}, "body"),
    ],
)
async def test_invalid_profile_updates_name_the_field(
    client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    headers = await creator(client)
    response = await client.put("/api/v1/creators/me", headers=headers, json=payload)
    body = assert_error(response, 400, "40002")
    assert body["error"]["details"][0]["field"] == field


async def test_wallet_is_stored_checksummed(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    session = await register(client, "creator")
    headers = bearer(session["access_token"])
    address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    response = await client.put(
        "/api/v1/creators/me/wallet", headers=headers, json={"wallet_address": address.lower()}
    )
    assert response.status_code == 200, response.text
    assert response.json()["wallet_address"] == address
    stored = await db_pool.fetchval(
        "SELECT wallet_address FROM users WHERE id = $1", session["user"]["id"]
    )
    assert stored == address
    bad = await client.put(
        "/api/v1/creators/me/wallet",
        headers=headers,
        json={"wallet_address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"},
    )
    body = assert_error(bad, 400, "40002")
    assert body["error"]["details"][0]["field"] == "wallet_address"
    unchanged = await client.get("/api/v1/creators/me", headers=headers)
    assert unchanged.json()["wallet_address"] == address


@settings(max_examples=40, deadline=None)
@given(text=st.one_of(addresses, st.sampled_from(["", "0x", "0x" + "0" * 40])))
async def test_property_10_wallet_address_validation_over_the_api(
    control_url: str, text: str
) -> None:
    """Property 10: Wallet Address Validation, end to end: the API accepts exactly the valid
    Ethereum addresses and answers 400 `40002` on `wallet_address` for everything else."""
    async with httpx.AsyncClient(base_url=control_url) as client:
        headers = await creator(client)
        response = await client.put(
            "/api/v1/creators/me/wallet", headers=headers, json={"wallet_address": text}
        )
    if oracle_accepts(text):
        assert response.status_code == 200, response.text
        assert response.json()["wallet_address"] == checksum_address(text)
    else:
        body = assert_error(response, 400, "40002")
        assert body["error"]["details"][0]["field"] == "wallet_address"


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/api/v1/creators/me", None),
        ("PUT", "/api/v1/creators/me", {"bio": "x"}),
        ("PUT", "/api/v1/creators/me/wallet", {"wallet_address": "0x" + "a" * 40}),
    ],
)
async def test_creator_routes_are_for_creators_only(
    client: httpx.AsyncClient, method: str, path: str, payload: dict[str, str] | None
) -> None:
    developer = await register(client, "developer")
    as_developer = await client.request(
        method, path, json=payload, headers=bearer(developer["access_token"])
    )
    assert_error(as_developer, 403, "40301")
    anonymous = await client.request(method, path, json=payload)
    assert_error(anonymous, 401, "40101")
