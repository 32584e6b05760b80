"""Inputs that once answered 500 (issue 9, items 2-6) answer a 4xx in the envelope: NUL bytes
and lone surrogates in any text, invalid UTF-8 bodies, forged cursors, integers beyond int64,
instants outside what Postgres and Python's datetime hold, and validly signed tokens with a
malformed subject or shard. Each exact input from the issue, then hypothesis generating the
class (NULs, huge numbers, far dates) against the routes that take them."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import jwt
import orjson
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control_plane.api_client import bearer, role_tokens
from tests.processes import TEST_JWT_SECRET


def _cursor(raw: bytes) -> str:
    """A cursor as the listings write them (base64url JSON), around any JSON text."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_ID = str(uuid.uuid4())
_FAR_PAST = "0001-01-01T00:00:00+05:00"

# (who, method, path, query, json body): every one once answered 500.
CASES: list[tuple[str, str, str, dict[str, str] | None, Any]] = [
    # Item 2: NUL in text that reaches Postgres.
    ("anon", "GET", "/api/v1/marketplace/agents", {"q": "a\x00b"}, None),
    ("anon", "GET", "/api/v2/marketplace/agents", {"q": "\x00"}, None),
    ("anon", "GET", "/api/v1/marketplace/agents", {"category": "x\x00"}, None),
    ("anon", "GET", "/api/v2/marketplace/agents", {"category": "\x00"}, None),
    ("anon", "POST", "/api/v1/auth/login", None, {"email": "a\x00@b.test", "password": "x"}),
    ("anon", "POST", "/api/v1/auth/register", None,
     {"email": "a\x00@b.test", "password": "long enough 1", "user_type": "developer"}),
    ("anon", "POST", "/api/v1/auth/register", None,
     {"email": "nul@b.test", "password": "long enough 1", "user_type": "creator",
      "display_name": "x\x00"}),
    ("creator", "PUT", "/api/v1/creators/me", None, {"display_name": "x\x00y"}),
    ("developer", "POST", "/api/v1/developers/keys", None, {"name": "key\x00"}),
    ("admin", "GET", "/api/v1/admin/users", {"q": "\x00"}, None),
    ("admin", "GET", "/api/v1/admin/agents", {"q": "\x00"}, None),
    ("admin", "GET", "/api/v1/admin/audit-log", {"action": "\x00"}, None),
    ("admin", "GET", "/api/v1/admin/audit-log", {"target_type": "a\x00"}, None),
    ("admin", "GET", "/api/v1/admin/audit-log", {"target_id": "\x00"}, None),
    ("admin", "PUT", f"/api/v1/admin/users/{_ID}/status", None,
     {"status": "suspended", "reason": "\x00"}),
    ("admin", "PUT", f"/api/v1/admin/agents/{_ID}/status", None,
     {"status": "suspended", "reason": "bad\x00"}),
    ("admin", "PUT", "/api/v1/admin/feature-flags/a%00b", None, {"enabled": True}),
    # A lone surrogate cannot even be encoded for Postgres.
    ("developer", "POST", "/api/v1/developers/keys", None, b'{"name": "\\ud800x"}'),
    # Item 4: forged cursors.
    ("anon", "GET", "/api/v1/marketplace/agents",
     {"sort": "popular", "cursor": _cursor(b'["popular",' + str(2**70).encode() + b',"'
                                           + _ID.encode() + b'"]')}, None),
    ("anon", "GET", "/api/v1/marketplace/agents",
     {"sort": "popular", "cursor": _cursor(b'["popular",1e999999,"' + _ID.encode() + b'"]')},
     None),
    ("anon", "GET", "/api/v1/marketplace/agents",
     {"sort": "price", "cursor": _cursor(b'["price","1e999999","' + _ID.encode() + b'"]')},
     None),
    ("anon", "GET", "/api/v1/marketplace/agents",
     {"sort": "rating", "cursor": _cursor(b'["rating","9e99999",9223372036854775808,"'
                                          + _ID.encode() + b'"]')}, None),
    ("anon", "GET", "/api/v1/marketplace/agents",
     {"sort": "newest", "cursor": _cursor(orjson.dumps(["newest", _FAR_PAST, _ID]))}, None),
    ("anon", "GET", f"/api/v1/reviews/agents/{_ID}",
     {"cursor": _cursor(orjson.dumps(["reviews", _FAR_PAST, _ID]))}, None),
    ("admin", "GET", "/api/v1/admin/moderation/queue",
     {"cursor": _cursor(orjson.dumps(["pending", "9999-12-31T23:59:59-05:00", _ID]))}, None),
    ("developer", "GET", "/api/v1/developers/keys",
     {"cursor": _cursor(orjson.dumps(["keys", _FAR_PAST, _ID]))}, None),
    # Item 5: dates and integers beyond what Postgres or datetime hold.
    ("developer", "GET", "/api/v1/developers/usage", {"to": "0001-01-02T00:00:00Z"}, None),
    ("developer", "GET", "/api/v1/developers/usage",
     {"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T00:00:00Z"}, None),
    ("admin", "GET", "/api/v1/admin/audit-log", {"before": "9223372036854775808"}, None),
]  # fmt: skip


@pytest_asyncio.fixture(scope="module")
async def tokens(control_url: str, db_pool: asyncpg.Pool) -> dict[str, str]:
    return await role_tokens(control_url, db_pool)


def _assert_client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("case", CASES)
async def test_the_issues_inputs_answer_a_client_error(
    module_client: httpx.AsyncClient,
    tokens: dict[str, str],
    case: tuple[str, str, str, dict[str, str] | None, Any],
) -> None:
    who, method, path, query, body = case
    headers = bearer(tokens[who]) if who != "anon" else {}
    content = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
    response = await module_client.request(
        method, path, params=query, content=content,
        headers={**headers, "content-type": "application/json"},
    )  # fmt: skip
    _assert_client_error(response)
    assert response.status_code in (400, 404), response.text


@pytest.mark.parametrize(
    "raw",
    [b'{"email":"\xff@x.test","password":"x"}', b'{"email":"a@b.test","password":"\xc3\x28"}'],
)
async def test_invalid_utf8_in_a_body_is_a_400(
    module_client: httpx.AsyncClient, raw: bytes
) -> None:
    response = await module_client.post(
        "/api/v1/auth/login", content=raw, headers={"content-type": "application/json"}
    )
    _assert_client_error(response)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "40001"


def _signed(**claims: Any) -> str:
    now = int(time.time())
    base = {"iss": "agentlink", "typ": "developer", "role": None, "iat": now, "exp": now + 600}
    return jwt.encode(base | claims, TEST_JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "not-a-uuid", "shard": 0},
        {"sub": "a\x00b", "shard": 0},
        {"sub": _ID + "x" * 10_000, "shard": 0},
        {"sub": 12345, "shard": 0},
        {"sub": _ID, "shard": "x"},
        {"sub": _ID, "shard": 10**30},
        {"sub": _ID, "shard": -1},
        {"sub": _ID, "shard": 1.5},
        {"sub": _ID},
    ],
)
async def test_a_signed_token_with_a_malformed_subject_or_shard_is_a_401(
    module_client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    response = await module_client.get("/api/v1/developers/me", headers=bearer(_signed(**claims)))
    _assert_client_error(response)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "40101"


# --- the class, generated -------------------------------------------------------------------

_hostile_text = st.one_of(
    st.text(max_size=20).map(lambda text: text + "\x00"),
    st.text(max_size=5).flatmap(lambda a: st.text(max_size=5).map(lambda b: a + "\x00" + b)),
)
_huge_integer = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1)).map(
    str
)
_far_instant = st.one_of(
    st.datetimes(max_value=datetime(1969, 12, 31)),
    st.datetimes(min_value=datetime(9999, 1, 2)),
).map(lambda moment: moment.isoformat() + "Z")
_TEXT_QUERIES = [
    ("anon", "/api/v2/marketplace/agents", "q"),
    ("anon", "/api/v1/marketplace/agents", "category"),
    ("admin", "/api/v1/admin/users", "q"),
    ("admin", "/api/v1/admin/audit-log", "target_id"),
]
_INTEGER_QUERIES = [
    ("admin", "/api/v1/admin/audit-log", "before"),
    ("anon", "/api/v1/marketplace/agents", "limit"),
    ("creator", "/api/v1/agents", "page"),
]
_INSTANT_QUERIES = [
    ("developer", "/api/v1/developers/usage", "to"),
    ("developer", "/api/v1/developers/usage", "from"),
    ("creator", "/api/v1/creators/me/analytics", "from"),
    ("admin", "/api/v1/admin/payments", "created_to"),
]
_FUZZ = settings(
    max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip


def _get(control_url: str, token: str | None, path: str, params: dict[str, str]) -> None:
    headers = bearer(token) if token else {}
    response = httpx.get(control_url + path, params=params, headers=headers, timeout=10)
    _assert_client_error(response)


def _get_no_server_error(control_url: str, path: str, params: dict[str, str]) -> None:
    response = httpx.get(control_url + path, params=params, timeout=10)
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        _assert_client_error(response)


@pytest.fixture(scope="module")
def sync_tokens(tokens: dict[str, str]) -> dict[str, str]:
    return tokens


@pytest.mark.parametrize(
    ("queries", "values"),
    [
        pytest.param(_TEXT_QUERIES, _hostile_text, id="no-text-with-nul-reaches-postgres"),
        pytest.param(_INTEGER_QUERIES, _huge_integer, id="integers-beyond-int64-are-refused"),
        pytest.param(_INSTANT_QUERIES, _far_instant, id="far-instants-are-refused"),
    ],
)
@_FUZZ
@given(data=st.data())
def test_property_out_of_range_query_values_are_a_clear_4xx(
    control_url: str, sync_tokens: dict[str, str], queries: list[tuple[str, str, str]],
    values: st.SearchStrategy[str], data: st.DataObject,
) -> None:  # fmt: skip
    who, path, name = data.draw(st.sampled_from(queries), label="where")
    _get(control_url, sync_tokens.get(who), path, {name: data.draw(values, label="value")})


@_FUZZ
@given(
    st.sampled_from(["popular", "price", "rating", "newest", "relevance"]),
    st.lists(
        st.one_of(
            st.integers(min_value=2**63, max_value=2**64 - 1), st.just(1e308),
            st.sampled_from(["1e999999", "-9e99999", _FAR_PAST, "9999-12-31T23:00:00-05:00",
                             "NaN", "\x00", _ID]),
        ),
        min_size=1, max_size=3,
    ),
)  # fmt: skip
def test_property_forged_cursors_are_refused(
    control_url: str, sort: str, values: list[Any]
) -> None:
    cursor = _cursor(orjson.dumps([sort, *values]))
    _get_no_server_error(
        control_url, "/api/v1/marketplace/agents", {"sort": sort, "cursor": cursor}
    )


@pytest.mark.parametrize("path", ["/marketplace?q=%00", "/marketplace?category=a%00b"])
async def test_dashboard_pages_refuse_nul_in_their_forms(
    module_client: httpx.AsyncClient, path: str
) -> None:
    response = await module_client.get(path)
    assert response.status_code == 400, response.text[:300]
