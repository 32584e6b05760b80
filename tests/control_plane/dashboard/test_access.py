"""Who may open which page: deny by default, the public list, user types, admin permissions,
and ownership (changing an id in the address never shows another user's data)."""

from __future__ import annotations

import re
import uuid

import asyncpg
import pytest

from common.domain import AdminRole
from control_plane.dashboard.routes import PAGES, PUBLIC_PAGES
from tests.control_plane.dashboard.conftest import PASSWORD, Browserless
from tests.control_plane.dashboard.support import create_agent, make_admin

PARAMS = {"agent_id": str(uuid.uuid4()), "key_id": str(uuid.uuid4()), "version": "1",
          "user_id": str(uuid.uuid4()), "review_id": str(uuid.uuid4()), "key": "enable_rag",
          "decision": "approve", "payment_id": str(uuid.uuid4()),
          "file_id": str(uuid.uuid4()), "webhook_id": str(uuid.uuid4())}  # fmt: skip
PRIVATE = [page for page in PAGES if page.operation not in PUBLIC_PAGES]


def test_the_public_list_is_short_and_every_entry_is_a_real_page() -> None:
    operations = {page.operation for page in PAGES}
    assert operations >= PUBLIC_PAGES
    assert {path for _, path in PUBLIC_PAGES} == {
        "/", "/marketplace", "/marketplace/{agent_id}", "/pricing", "/login", "/register"
    }  # fmt: skip
    assert len(PRIVATE) > 30


@pytest.mark.parametrize("page", PRIVATE, ids=lambda page: f"{page.method} {page.path}")
async def test_logged_out_visitors_are_sent_to_login(browserless: Browserless, page) -> None:  # type: ignore[no-untyped-def]
    path = page.path.format(**PARAMS)
    if page.method == "GET":
        response = await browserless.get(path)
    else:
        response = await browserless.post(path, {})
    if page.api:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "40101"
        return
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/login?next=")
    login = await browserless.get(location)
    assert login.status_code == 200
    assert "Log in" in login.text


async def test_after_login_the_visitor_lands_where_they_were_going(
    browserless: Browserless,
) -> None:
    email = await browserless.register("developer")
    await browserless.post("/logout")
    bounced = await browserless.get("/developer/usage?days=7")
    assert bounced.headers["location"] == "/login?next=%2Fdeveloper%2Fusage%3Fdays%3D7"
    await browserless.get(bounced.headers["location"])
    response = await browserless.post(
        "/login", {"email": email, "password": PASSWORD, "next": "/developer/usage?days=7"}
    )
    assert response.headers["location"] == "/developer/usage?days=7"
    # ...but never off the site.
    await browserless.post("/logout")
    await browserless.get("/login")
    response = await browserless.post(
        "/login", {"email": email, "password": PASSWORD, "next": "//evil.example/x"}
    )
    assert response.headers["location"] == "/developer"


async def test_each_area_is_for_its_own_user_type(
    browserless: Browserless, another: Browserless
) -> None:
    await browserless.register("developer")
    await another.register("creator")
    for path in ("/creator", "/creator/agents/new", "/admin", "/admin/users"):
        response = await browserless.get(path)
        assert response.status_code == 403, path
        assert "This page is for" in response.text
    for path in ("/developer", "/developer/keys", "/playground"):
        response = await another.get(path)
        assert response.status_code == 403, path
    assert (await browserless.get("/developer")).status_code == 200
    assert (await another.get("/creator")).status_code == 200


async def test_admin_pages_need_the_role_permission(
    browserless: Browserless, db_pool: asyncpg.Pool
) -> None:
    email = await make_admin(db_pool, AdminRole.MODERATOR)
    assert (await browserless.login(email)).status_code == 303
    assert (await browserless.get("/admin/moderation")).status_code == 200
    assert (await browserless.get("/admin/users")).status_code == 200  # users:view
    for path in ("/admin/flags", "/admin/system", "/admin/audit"):
        response = await browserless.get(path)
        assert response.status_code == 403, path
        assert "admin role" in response.text
    refused = await browserless.post("/admin/flags/enable_rag", {"enabled": "false"})
    assert refused.status_code == 403


async def test_a_creator_cannot_open_another_creators_agent_by_its_id(
    browserless: Browserless, another: Browserless
) -> None:
    await browserless.register("creator")
    await another.register("creator")
    agent_id = await create_agent(browserless, name="Owner only", prompt="OWNER-ONLY-PROMPT")
    for path in (f"/creator/agents/{agent_id}", f"/creator/agents/{agent_id}/versions",
                 f"/creator/agents/{agent_id}/versions/diff?from=1&to=1",
                 f"/creator/agents/{agent_id}/knowledge"):  # fmt: skip
        response = await another.get(path)
        assert response.status_code == 403, path
        assert "belongs to another creator" in response.text
        assert "OWNER-ONLY-PROMPT" not in response.text
    changed = await another.post(f"/creator/agents/{agent_id}/publish")
    assert changed.status_code == 403
    mine = await browserless.get(f"/creator/agents/{agent_id}")
    assert "OWNER-ONLY-PROMPT" in mine.text
    assert "draft" in mine.text  # the other creator's publish changed nothing


async def test_a_developer_cannot_revoke_another_developers_key(
    browserless: Browserless, another: Browserless
) -> None:
    await browserless.register("developer")
    await another.register("developer")
    created = await browserless.post("/developer/keys", {"name": "mine"})
    assert created.status_code == 201
    key_id = re.search(r'action="/developer/keys/([0-9a-f-]{36})/revoke"', created.text)
    assert key_id is not None
    refused = await another.post(f"/developer/keys/{key_id.group(1)}/revoke")
    assert refused.status_code == 404
    listing = await browserless.get("/developer/keys")
    assert "Revoke key" in listing.text  # still active


async def test_unknown_ids_are_a_plain_not_found(browserless: Browserless) -> None:
    missing = await browserless.get(f"/marketplace/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "<h1>Not found</h1>" in missing.text
    garbage = await browserless.get("/marketplace/not-a-uuid")
    assert garbage.status_code == 404
