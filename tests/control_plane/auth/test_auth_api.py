"""Accounts over real HTTP: register, login, refresh rotation, reuse detection, logout,
throttling, and deny-by-default authentication (seed property 35)."""

from __future__ import annotations

import time

import asyncpg
import httpx
import jwt
import pytest

from tests.control_plane.api_client import assert_error, bearer, fresh_email, register
from tests.factories import set_user_status
from tests.processes import TEST_JWT_SECRET


async def test_register_returns_tokens_and_a_developer_gets_the_free_quota(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    """Property 35: Free Quota Initialization."""
    body = await register(client, "developer")
    assert body["token_type"] == "bearer"
    assert body["user"]["user_type"] == "developer"
    claims = jwt.decode(body["access_token"], TEST_JWT_SECRET, algorithms=["HS256"],
                        issuer="agentlink")  # fmt: skip
    assert claims["sub"] == body["user"]["id"]
    assert claims["exp"] - claims["iat"] == 900
    quota = await db_pool.fetchrow("SELECT * FROM quotas WHERE user_id = $1", body["user"]["id"])
    assert quota["free_quota"] == 100
    assert quota["used_quota"] == 0


async def test_a_creator_gets_a_profile(client: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    body = await register(client, "creator")
    profile = await db_pool.fetchrow(
        "SELECT display_name FROM creator_profiles WHERE user_id = $1", body["user"]["id"]
    )
    assert profile is not None


async def test_email_is_normalised_and_duplicates_conflict(client: httpx.AsyncClient) -> None:
    email = fresh_email()
    padded = {"email": f"  {email.upper()} ", "password": "long enough 1", "user_type": "creator"}
    first = await client.post("/api/v1/auth/register", json=padded)
    assert first.status_code == 201
    assert first.json()["user"]["email"] == email
    again = await client.post("/api/v1/auth/register", json={
        "email": email, "password": "long enough 1", "user_type": "developer"})  # fmt: skip
    assert_error(again, 409, "40901")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": "long enough 1", "user_type": "creator"}, "email"),
        ({"email": "a@b.test", "password": "short", "user_type": "creator"}, "password"),
        ({"email": "a@b.test", "password": "long enough 1", "user_type": "admin"}, "user_type"),
        ({"email": "a@b.test", "password": "long enough 1"}, "body"),
    ],
)
async def test_invalid_registration_names_the_field(
    client: httpx.AsyncClient, payload: dict[str, str], field: str
) -> None:
    body = assert_error(await client.post("/api/v1/auth/register", json=payload), 400, "40002")
    assert body["error"]["details"][0]["field"] == field


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", content=b"{nope",
                                 headers={"content-type": "application/json"})  # fmt: skip
    assert_error(response, 400, "40001")


async def test_login_with_right_and_wrong_password(client: httpx.AsyncClient) -> None:
    email = fresh_email()
    await client.post("/api/v1/auth/register", json={
        "email": email, "password": "the right one", "user_type": "developer"})  # fmt: skip
    ok = await client.post("/api/v1/auth/login", json={"email": email, "password": "the right one"})
    assert ok.status_code == 200
    assert ok.json()["access_token"]
    wrong = await client.post("/api/v1/auth/login", json={"email": email, "password": "nope"})
    assert_error(wrong, 401, "40101")
    unknown = await client.post("/api/v1/auth/login",
                                json={"email": fresh_email(), "password": "x"})  # fmt: skip
    assert_error(unknown, 401, "40101")
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_repeated_failed_logins_are_throttled_per_account(client: httpx.AsyncClient) -> None:
    email = fresh_email()
    await client.post("/api/v1/auth/register", json={
        "email": email, "password": "the right one", "user_type": "developer"})  # fmt: skip
    for _ in range(5):
        failed = await client.post("/api/v1/auth/login", json={"email": email, "password": "no"})
        assert failed.status_code == 401
    blocked = await client.post("/api/v1/auth/login",
                                json={"email": email, "password": "the right one"})  # fmt: skip
    assert_error(blocked, 429, "42902")
    assert int(blocked.headers["retry-after"]) > 0


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = await client.post("/api/v1/auth/refresh",
                               json={"refresh_token": first["refresh_token"]})  # fmt: skip
    assert second.status_code == 200
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    # The old token again: treated as stolen, so the whole family dies, the new one too.
    replay = await client.post("/api/v1/auth/refresh",
                               json={"refresh_token": first["refresh_token"]})  # fmt: skip
    assert_error(replay, 401, "40101")
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
    assert_error(after, 401, "40101")


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    session = await register(client)
    out = await client.post("/api/v1/auth/logout", headers=bearer(session["access_token"]),
                            json={"refresh_token": session["refresh_token"]})  # fmt: skip
    assert out.status_code == 204
    again = await client.post("/api/v1/auth/refresh",
                              json={"refresh_token": session["refresh_token"]})  # fmt: skip
    assert_error(again, 401, "40101")


async def test_protected_routes_deny_by_default(client: httpx.AsyncClient) -> None:
    no_token = await client.post("/api/v1/auth/logout", json={"refresh_token": "x" * 20})
    assert_error(no_token, 401, "40101")
    forged = jwt.encode({"sub": "x", "iss": "agentlink", "iat": 1, "exp": 2**31},
                        "another-secret-that-is-long-enough!!", algorithm="HS256")  # fmt: skip
    assert_error(await client.post("/api/v1/auth/logout", headers=bearer(forged),
                                   json={"refresh_token": "x" * 20}), 401, "40101")  # fmt: skip
    claims = {"sub": "x", "iss": "agentlink", "iat": 1, "exp": int(time.time()) - 5,
              "typ": "developer", "shard": 1}  # fmt: skip
    expired = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    assert_error(await client.post("/api/v1/auth/logout", headers=bearer(expired),
                                   json={"refresh_token": "x" * 20}), 401, "40102")  # fmt: skip


async def test_suspended_users_are_locked_out_at_once(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    session = await register(client)
    await set_user_status(db_pool, session["user"]["id"], "suspended")
    response = await client.post("/api/v1/auth/logout", headers=bearer(session["access_token"]),
                                 json={"refresh_token": session["refresh_token"]})  # fmt: skip
    assert_error(response, 403, "40301")


async def test_openapi_document_and_docs_page(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    register_op = document["paths"]["/api/v1/auth/register"]["post"]
    assert "security" not in register_op
    assert "security" in document["paths"]["/api/v1/auth/logout"]["post"]
    assert (await client.get("/docs")).status_code == 200


async def test_every_operation_documents_its_errors_in_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    """Each error status a route answers is listed, in the envelope (issue 9, documentation
    drift; schemathesis' status_code_conformance checks the list in test_api_fuzz.py)."""
    document = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
            assert errors, (method, path)
            for response in errors.values():
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
