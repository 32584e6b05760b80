"""Creator studio over HTTP: create, validate, edit into versions, diff, roll back, publish."""

from __future__ import annotations

import httpx

from tests.control_plane.dashboard.conftest import Browserless
from tests.control_plane.dashboard.support import agent_form, create_agent


async def test_a_bad_form_is_shown_again_with_each_error_next_to_its_field(
    browserless: Browserless,
) -> None:
    await browserless.register("creator")
    await browserless.get("/creator/agents/new")
    response = await browserless.post(
        "/creator/agents/new",
        agent_form("Broken", "a prompt", price="500", temperature="7",
                   fallbacks="nonsense"),
    )  # fmt: skip
    assert response.status_code == 400
    assert 'id="fallbacks-error"' in response.text
    assert 'value="Broken"' in response.text  # the input is kept
    response = await browserless.post("/creator/agents/new", agent_form("Broken", "a", "500"))
    assert response.status_code == 400
    assert 'id="price_per_call-error"' in response.text
    response = await browserless.post(
        "/creator/agents/new", agent_form("Broken", "a", temperature="7")
    )
    assert 'id="temperature-error"' in response.text
    listing = await browserless.get("/creator/agents")
    assert "Broken" not in listing.text


async def test_edits_make_versions_that_can_be_compared_and_rolled_back(
    browserless: Browserless,
) -> None:
    await browserless.register("creator")
    agent_id = await create_agent(browserless, name="Versioned", prompt="line one\nline two")
    unchanged = await browserless.post(
        f"/creator/agents/{agent_id}", agent_form("Versioned", "line one\r\nline two")
    )
    assert unchanged.status_code == 303
    page = await browserless.get(unchanged.headers["location"])
    assert "Nothing changed." in page.text
    assert "version 1" in page.text
    edited = await browserless.post(
        f"/creator/agents/{agent_id}",
        agent_form("Versioned", "line one\nline 2\nline three", price="0.05", temperature="0.3"),
    )
    assert edited.status_code == 303
    page = await browserless.get(edited.headers["location"])
    assert "Saved as version 2." in page.text
    diff = await browserless.get(f"/creator/agents/{agent_id}/versions/diff?from=1&to=2")
    assert diff.status_code == 200
    assert (
        '<div class="del"><span class="visually-hidden">removed: </span>- line two</div>'
        in diff.text
    )
    assert (
        '<div class="add"><span class="visually-hidden">added: </span>+ line three</div>'
        in diff.text
    )
    assert "temperature" in diff.text
    assert "0.05" in diff.text
    rolled = await browserless.post(f"/creator/agents/{agent_id}/versions/1/rollback")
    assert rolled.status_code == 303
    history = await browserless.get(rolled.headers["location"])
    assert "Rolled back: version 3 has version 1" in history.text
    current = await browserless.get(f"/creator/agents/{agent_id}")
    assert "line one\nline two</textarea>" in current.text
    assert 'value="0.05"' in current.text  # the listing (price) stays as it is


async def test_publish_lists_the_agent_and_unpublish_takes_it_off(
    browserless: Browserless, dashboard_stack: object
) -> None:
    await browserless.register("creator")
    agent_id = await create_agent(browserless, name="Listed soon", prompt="p", publish=True)
    async with httpx.AsyncClient(base_url=browserless.http.base_url) as anonymous:
        public = await anonymous.get(f"/marketplace/{agent_id}")
        assert public.status_code == 200
        assert "Listed soon" in public.text
        assert "https://gateway.agentlink.test/proxy/v1/agents/" + agent_id in public.text
        assert "p</textarea>" not in public.text
        search = await anonymous.get("/marketplace", params={"q": "Listed soon"})
        assert f"/marketplace/{agent_id}" in search.text
        await browserless.post(f"/creator/agents/{agent_id}/unpublish")
        gone = await anonymous.get(f"/marketplace/{agent_id}")
        assert gone.status_code == 404


async def test_profile_and_wallet(browserless: Browserless) -> None:
    await browserless.register("creator")
    await browserless.get("/creator/profile")
    bad = await browserless.post(
        "/creator/profile",
        {"display_name": "Ada", "bio": "", "avatar_url": "", "wallet_address": "0x123"},
    )
    assert bad.status_code == 400
    assert 'id="wallet_address-error"' in bad.text
    wallet = "0x52908400098527886E0F7030069857D2E4169EE7"  # EIP-55 test vector
    good = await browserless.post(
        "/creator/profile",
        {"display_name": "Ada", "bio": "I write agents.", "avatar_url": "",
         "wallet_address": wallet},
    )  # fmt: skip
    assert good.status_code == 303
    earnings = await browserless.get("/creator/earnings")
    assert wallet in earnings.text


async def test_prompt_caching_is_a_setting_of_the_agent_version(browserless: Browserless) -> None:
    await browserless.register("creator")
    agent_id = await create_agent(browserless, name="Cached", prompt="a long prompt")
    form = await browserless.get(f"/creator/agents/{agent_id}")
    assert 'name="prompt_cache" value="1">' in form.text  # off by default
    edited = await browserless.post(
        f"/creator/agents/{agent_id}", agent_form("Cached", "a long prompt", prompt_cache="1")
    )
    assert edited.status_code == 303
    page = await browserless.get(edited.headers["location"])
    assert "Saved as version 2." in page.text
    assert 'name="prompt_cache" value="1" checked>' in page.text
    diff = await browserless.get(f"/creator/agents/{agent_id}/versions/diff?from=1&to=2")
    assert "prompt cache" in diff.text
