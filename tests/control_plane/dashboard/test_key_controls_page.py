"""The developer console's key controls page over HTTP, on the real services: a key's spend
cap, rate limit, expiry and allowed agents are set (and cleared) in the page, listed with the
key, and hold at the gateway on the next call; rotation shows the new key once; bad input is
shown next to its field; another developer's key is not found."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import httpx

from tests.control_plane.dashboard.conftest import Browserless, Stack
from tests.control_plane.dashboard.support import create_agent, find

FULL_KEY = re.compile(r"ak_[0-9A-Za-z]{38}")


def _controls(**values: str) -> dict[str, str]:
    form = {"name": "ci", "cap_units": "", "cap_period": "", "rate_limit": "", "expires_at": "",
            "allowed_agents": ""}  # fmt: skip
    return {**form, **values}


async def _new_key(developer: Browserless, name: str = "ci") -> tuple[str, str]:
    created = await developer.post("/developer/keys", {"name": name})
    assert created.status_code == 201
    key = FULL_KEY.search(created.text)
    assert key is not None
    key_id = find(r'href="/developer/keys/([0-9a-f-]{36})"', created.text)
    return key.group(0), key_id


async def test_controls_are_set_in_the_page_and_hold_at_the_gateway(
    browserless: Browserless, another: Browserless, dashboard_stack: Stack
) -> None:
    await another.register("creator")
    allowed = await create_agent(another, name="Allowed", prompt="a", publish=True)
    other = await create_agent(another, name="Other", prompt="o", publish=True)
    await browserless.register("developer")
    await browserless.get("/developer/keys")
    key, key_id = await _new_key(browserless)
    page = await browserless.get(f"/developer/keys/{key_id}")
    assert page.status_code == 200
    assert "Save controls" in page.text

    saved = await browserless.post(f"/developer/keys/{key_id}", _controls(
        cap_units="2", cap_period="day", rate_limit="30", allowed_agents=f"{allowed}\n",
    ))  # fmt: skip
    assert saved.status_code == 303, saved.text
    page = await browserless.get(saved.headers["location"])
    assert "Saved" in page.text
    assert 'value="2"' in page.text
    assert '<option value="day" selected>' in page.text
    assert allowed in page.text
    listing = await browserless.get("/developer/keys")
    assert "0 of 2 units a day · 30 calls/min · 1 agent only" in html.unescape(listing.text)

    async with httpx.AsyncClient(base_url=dashboard_stack.gateway_url, timeout=30) as gateway:

        async def call(agent_id: str) -> int:
            answer = await gateway.post(
                f"/proxy/v1/agents/{agent_id}/chat", headers={"X-AgentLink-Key": key},
                json={"messages": [{"role": "user", "content": "ping"}]},
            )  # fmt: skip
            return answer.status_code

        assert await call(other) == 403  # not on the allow-list
        assert await call(allowed) == 200
        # An expiry in the past (typed as the page's UTC datetime-local): it stops at once.
        past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
        saved = await browserless.post(f"/developer/keys/{key_id}", _controls(expires_at=past))
        assert saved.status_code == 303
        assert await call(allowed) == 401
        listing = await browserless.get("/developer/keys")
        assert "expires" in listing.text
        # Everything cleared: any agent, no expiry.
        saved = await browserless.post(f"/developer/keys/{key_id}", _controls())
        assert saved.status_code == 303
        assert await call(other) == 200


async def test_bad_controls_are_shown_next_to_their_fields(browserless: Browserless) -> None:
    await browserless.register("developer")
    await browserless.get("/developer/keys")
    _, key_id = await _new_key(browserless)
    for values, field in (
        ({"cap_units": "0", "cap_period": "day"}, "cap_units"),
        ({"cap_units": "5"}, "cap_period"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"allowed_agents": "not-an-agent"}, "allowed_agents"),
        ({"expires_at": "tomorrow"}, "expires_at"),
    ):
        refused = await browserless.post(f"/developer/keys/{key_id}", _controls(**values))
        assert refused.status_code == 400, (values, refused.text)
        assert f'id="{field}-error"' in refused.text, (values, field)
        assert f'id="{field}" name="{field}"' in refused.text


async def test_rotation_shows_the_new_key_once(
    browserless: Browserless, another: Browserless
) -> None:
    await browserless.register("developer")
    await browserless.get("/developer/keys")
    old, key_id = await _new_key(browserless, "server")
    rotated = await browserless.post(f"/developer/keys/{key_id}/rotate", {"grace_seconds": "3600"})
    assert rotated.status_code == 201
    assert rotated.headers["cache-control"] == "no-store"
    new = FULL_KEY.search(rotated.text)
    assert new is not None
    assert new.group(0) != old
    assert "shown only this once" in rotated.text
    listing = await browserless.get("/developer/keys")
    assert not FULL_KEY.search(listing.text)
    assert listing.text.count(">server<") == 2  # the replacement keeps the name
    assert "expires" in listing.text  # the old key's grace

    await another.register("developer")
    assert (await another.get(f"/developer/keys/{key_id}")).status_code == 404
    stolen = await another.post(f"/developer/keys/{key_id}", _controls(rate_limit="1"))
    assert stolen.status_code == 404
    assert (await another.post(f"/developer/keys/{key_id}/rotate", {})).status_code == 404
