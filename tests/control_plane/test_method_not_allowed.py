"""A wrong method on a known path: 405 in the envelope, with an `Allow` header naming every
method the path answers (RFC 9110 §15.5.6), on API operations, infrastructure routes and
dashboard pages alike."""

from __future__ import annotations

import re

import httpx

from control_plane.dashboard.routes import PAGES
from control_plane.routes import INFRA_ROUTES, OPENAPI

_PARAM = re.compile(r"{[^}]+}")
_CANDIDATES = ("PATCH", "PUT", "DELETE", "POST", "GET")


def methods_by_path() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path, operations in OPENAPI["paths"].items():
        found.setdefault(path, set()).update(method.upper() for method in operations)
    for method, path, _ in INFRA_ROUTES:
        found.setdefault(path, set()).add(method)
    for page in PAGES:
        found.setdefault(page.path, set()).add(page.method)
    return found


def allowed(header: str) -> set[str]:
    return {method.strip() for method in header.split(",")}


def test_every_path_and_method_is_counted_once() -> None:
    # Dashboard pages and API operations live under different prefixes.
    assert len(methods_by_path()) == len(
        {path for path in OPENAPI["paths"]}
        | {path for _, path, _ in INFRA_ROUTES}
        | {page.path for page in PAGES}
    )


async def test_a_wrong_method_names_every_method_of_the_path(control_url: str) -> None:
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=control_url) as client:
        for template, methods in methods_by_path().items():
            path = _PARAM.sub("00000000-0000-4000-8000-000000000000", template)
            method = next(m for m in _CANDIDATES if m not in methods)
            response = await client.request(method, path)
            expected = methods | ({"HEAD"} if "GET" in methods else set())
            if response.status_code != 405 or allowed(response.headers["allow"]) != expected:
                got = response.headers.get("allow")
                wrong.append(f"{method} {template}: {response.status_code} {got!r}, {expected}")
                continue
            body = response.json()
            assert body["error"]["code"] == "40501", (template, body)
    assert not wrong, "\n".join(wrong)


async def test_head_runs_the_get_handler_of_a_merged_path(control_url: str) -> None:
    # /api/v1/developers/keys answers GET and POST; HEAD is GET without a body.
    async with httpx.AsyncClient(base_url=control_url) as client:
        head = await client.head("/api/v1/developers/keys")
        post = await client.post("/api/v1/developers/keys", json={"name": "x"})
    assert head.status_code == 401
    assert head.content == b""
    assert post.status_code == 401
