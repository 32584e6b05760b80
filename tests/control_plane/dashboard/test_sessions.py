"""Cookie sessions: the cookies' flags, CSRF on every state-changing request, refresh rotation
(with the grace window parallel tabs need), logout here and everywhere, suspension."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import jwt
import pytest
from starlette.requests import Request
from starlette.responses import Response

from common import keyspace
from common.errors import ApiError, ErrorCode
from control_plane.auth.schemas import TokenPair, UserOut
from control_plane.dashboard.session import (
    Session,
    check_access,
    secure_cookies,
    write_cookies,
)
from control_plane.dashboard.settings import DashboardSettings
from tests.control_plane.api_client import register
from tests.control_plane.conftest import Backend
from tests.control_plane.dashboard.conftest import PASSWORD, Browserless, Stack
from tests.factories import set_user_status


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


async def test_session_cookies_are_http_only_lax_and_not_readable_by_scripts(
    browserless: Browserless,
) -> None:
    await browserless.get("/register")
    response = await browserless.post(
        "/register", {"email": "cookie-flags@example.test", "password": PASSWORD,
                      "user_type": "developer"},
    )  # fmt: skip
    cookies = _set_cookies(response)
    for name in ("al_access", "al_refresh", "al_csrf"):
        if name == "al_csrf" and name not in cookies:
            continue  # set on the first page already
        header = cookies[name].lower()
        assert "httponly" in header
        assert "samesite=lax" in header
        assert "path=/" in header
        assert "secure" not in header  # plain http here; see the next test for https
    page = await browserless.get("/developer")
    assert "al_refresh" not in page.text
    assert "rt_" not in page.text


def test_cookies_are_secure_over_https_or_when_configured() -> None:
    def request(scheme: str) -> Request:
        return Request({"type": "http", "scheme": scheme, "headers": [], "path": "/",
                        "query_string": b"", "server": ("x", 443)})  # fmt: skip

    auto = DashboardSettings.from_env({})
    assert secure_cookies(auto, request("https"))
    assert not secure_cookies(auto, request("http"))
    always = DashboardSettings.from_env({"DASHBOARD_SECURE_COOKIES": "always"})
    assert secure_cookies(always, request("http"))
    session = Session(csrf_secret="c" * 43, csrf_new=True)
    session.issued = TokenPair("access", "rt_refresh", 900, UserOut("u", "e", "developer"))
    response = Response()
    write_cookies(session, response, secure=True, refresh_ttl_s=3600)
    headers = [v.decode().lower() for k, v in response.raw_headers if k == b"set-cookie"]
    assert len(headers) == 3
    assert all("secure" in h and "httponly" in h and "samesite=lax" in h for h in headers)


async def _key_count(db: asyncpg.Pool, email: str) -> int:
    count: int = await db.fetchval(
        """SELECT count(*) FROM api_keys k JOIN users u ON u.id = k.user_id
           WHERE u.email = $1""",
        email,
    )
    return count


@pytest.mark.parametrize(
    ("case", "token", "headers"),
    [
        ("no token", None, {}),
        ("wrong token", "0" * 64, {}),
        ("cross-site fetch", "valid", {"Sec-Fetch-Site": "cross-site"}),
        ("same-site subdomain", "valid", {"Sec-Fetch-Site": "same-site"}),
        ("foreign origin", "valid", {"Origin": "https://evil.example"}),
        ("opaque origin", "valid", {"Origin": "null"}),
    ],
)
async def test_state_changing_posts_without_proof_of_origin_are_refused(
    browserless: Browserless, db_pool: asyncpg.Pool, case: str, token: str | None,
    headers: dict[str, str],
) -> None:  # fmt: skip
    email = await browserless.register("developer")
    data = {"name": "forged"}
    if token is not None:
        data["csrf_token"] = browserless.csrf if token == "valid" else token
    response = await browserless.http.post("/developer/keys", data=data, headers=headers)
    assert response.status_code == 403, case
    assert "Request refused" in response.text
    assert await _key_count(db_pool, email) == 0


async def test_a_token_from_another_session_does_not_work(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool
) -> None:
    """A token is bound to its browser's cookie and to its user: an attacker cannot plant
    their own (cookie, token) pair in a victim's browser."""
    victim = await browserless.register("developer")
    await another.register("developer")
    stolen_token = another.csrf
    response = await browserless.http.post(
        "/developer/keys", data={"csrf_token": stolen_token, "name": "x"}
    )
    assert response.status_code == 403
    attacker_cookie = another.http.cookies["al_csrf"]
    browserless.http.cookies.set("al_csrf", attacker_cookie)
    response = await browserless.http.post(
        "/developer/keys", data={"csrf_token": stolen_token, "name": "x"}
    )
    assert response.status_code == 403
    assert await _key_count(db_pool, victim) == 0


async def test_an_expired_access_token_is_renewed_by_rotating_the_refresh_token(
    browserless: Browserless,
) -> None:
    await browserless.register("developer")
    first_refresh = browserless.http.cookies["al_refresh"]
    browserless.http.cookies.delete("al_access")  # as the browser drops it at Max-Age
    response = await browserless.get("/developer")
    assert response.status_code == 200
    assert browserless.http.cookies["al_refresh"] != first_refresh
    assert browserless.http.cookies["al_access"]


async def test_parallel_tabs_with_the_same_refresh_token_keep_the_session(
    dashboard_stack: Stack, browserless: Browserless
) -> None:
    """Reuse detection would end the session if two tabs rotated one token; the grace window
    gives both the same new pair instead."""
    await browserless.register("developer")
    refresh = browserless.http.cookies["al_refresh"]
    csrf = browserless.http.cookies["al_csrf"]

    async def tab() -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=dashboard_stack.control_url,
            cookies={"al_refresh": refresh, "al_csrf": csrf},
        ) as client:
            return await client.get("/developer")

    responses = await asyncio.gather(*(tab() for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    new_refreshes = {r.cookies.get("al_refresh") for r in responses}
    assert len(new_refreshes) == 1
    assert refresh not in new_refreshes
    # The family is intact: the new token rotates once more.
    async with httpx.AsyncClient(
        base_url=dashboard_stack.control_url,
        cookies={"al_refresh": new_refreshes.pop() or "", "al_csrf": csrf},
    ) as client:
        assert (await client.get("/developer")).status_code == 200


async def test_logout_ends_the_access_token_and_the_refresh_token_at_once(
    dashboard_stack: Stack, browserless: Browserless
) -> None:
    await browserless.register("developer")
    copied = dict(browserless.http.cookies.items())
    response = await browserless.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "al_access" not in browserless.http.cookies
    # Someone who copied the cookies before the logout gets nothing from them.
    async with httpx.AsyncClient(base_url=dashboard_stack.control_url, cookies=copied) as client:
        replay = await client.get("/developer")
        assert replay.status_code == 303
        assert replay.headers["location"].startswith("/login")
    async with httpx.AsyncClient(
        base_url=dashboard_stack.control_url, cookies={"al_refresh": copied["al_refresh"]}
    ) as client:
        replay = await client.get("/developer")
        assert replay.status_code == 303


async def test_log_out_everywhere_ends_every_browser(
    browserless: Browserless, another: Browserless
) -> None:
    email = await browserless.register("developer")
    assert (await another.login(email)).status_code == 303
    assert (await another.get("/developer")).status_code == 200
    await asyncio.sleep(1.05)  # tokens issued in an earlier second than the logout
    response = await browserless.post("/logout/everywhere")
    assert response.status_code == 303
    elsewhere = await another.get("/developer")
    assert elsewhere.status_code == 303  # its access token is refused at once
    again = await another.login(email)
    assert again.status_code == 303  # logging in again works
    assert (await another.get("/developer")).status_code == 200


async def test_a_suspended_account_is_logged_out_on_its_next_page(
    browserless: Browserless, db_pool: asyncpg.Pool, dashboard_stack: Stack
) -> None:
    email = await browserless.register("developer")
    user = await db_pool.fetchrow("SELECT id, redis_shard FROM users WHERE email = $1", email)
    await set_user_status(db_pool, user["id"], "suspended")
    import redis.asyncio as redis_asyncio

    from common import keyspace

    redis = redis_asyncio.Redis.from_url(dashboard_stack.env["REDIS_URL"])
    try:
        await redis.delete(keyspace.user_record(user["redis_shard"], str(user["id"])))
    finally:
        await redis.aclose()
    response = await browserless.get("/developer")
    assert response.status_code == 303
    assert "inactive=1" in response.headers["location"]
    page = await browserless.get(response.headers["location"])
    assert "suspended or closed" in page.text
    login = await browserless.post("/login", {"email": email, "password": PASSWORD})
    assert login.status_code == 403
    assert "not active" in login.text


async def test_the_logout_marks_are_checked_on_the_single_node_and_on_the_cluster(
    backend: Backend,
) -> None:
    """A dashboard request reads the token's logout mark and the user's log-out-everywhere
    mark (two keys, two cluster slots) in one round trip; either mark ends the token."""
    first = await register(backend.http)
    second = await backend.http.post("/api/v1/auth/login", json={
        "email": first["user"]["email"], "password": "correct horse 1"})  # fmt: skip
    assert second.status_code == 200, second.text
    tokens = [first["access_token"], second.json()["access_token"]]
    for token in tokens:
        assert (await check_access(backend.state, token)).user_id == first["user"]["id"]

    jti = jwt.decode(tokens[0], options={"verify_signature": False})["jti"]
    await backend.redis.set(keyspace.dashboard_ended_access_token(jti), "1", ex=60)
    with pytest.raises(ApiError) as ended:
        await check_access(backend.state, tokens[0])
    assert ended.value.code == ErrorCode.INVALID_CREDENTIALS
    assert (await check_access(backend.state, tokens[1])).user_id == first["user"]["id"]

    everywhere = keyspace.dashboard_logged_out_before(first["user"]["id"])
    await backend.redis.set(everywhere, str(int(time.time()) + 5), ex=60)
    with pytest.raises(ApiError) as logged_out:
        await check_access(backend.state, tokens[1])
    assert logged_out.value.code == ErrorCode.INVALID_CREDENTIALS
