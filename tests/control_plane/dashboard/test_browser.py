"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright).

Journeys as people make them: a creator signs up, creates and publishes an agent; a developer
signs up, finds it, creates a key, buys quota through the fake Stripe checkout and sees it
credited, chats with it in the playground and watches the answer stream in; an admin
suspends the developer and the developer's next playground call fails with a clear message.
Every main page is screenshotted in light and dark and checked with axe-core (a key's
controls page with a cap, rate limit and allow-list set in it among them); a cross-site
form post is refused; logged-out visitors land on the login page; one user cannot open
another's page by changing an id. One browser for the whole module."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from common.domain import AdminRole
from tests.control_plane.api_client import fresh_email
from tests.control_plane.dashboard.browser import (
    SCREENSHOTS,
    check_page,
    check_pages,
    ensure_chromium,
    launch_args,
)
from tests.control_plane.dashboard.conftest import PASSWORD, Stack, Worker
from tests.control_plane.dashboard.support import make_admin
from tests.support import serve

# A browser run is slower than a plain HTTP test, and CI machines are shared.
pytestmark = pytest.mark.timeout(300)

STREAMED_REPLY = "one two three four five six seven eight nine ten eleven twelve"
SLOW_STREAM = f'[[mock chunks=6 chunk_delay_ms=250 reply="{STREAMED_REPLY}"]]'


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=launch_args()
        )
        yield launched
        await launched.close()


@pytest.fixture
def base(dashboard_stack: Stack) -> str:
    """The dashboard's URL (the control plane's)."""
    return dashboard_stack.control_url


@contextlib.asynccontextmanager
async def person(browser: Browser, base_url: str, **options: object) -> AsyncIterator[Page]:
    context: BrowserContext = await browser.new_context(
        base_url=base_url,
        viewport={"width": 1280, "height": 900},
        **options,  # type: ignore[arg-type]
    )
    context.set_default_timeout(15_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def sign_up(page: Page, user_type: str) -> str:
    email = fresh_email()
    await page.goto("/register")
    await page.get_by_label(
        re.compile("publish agents" if user_type == "creator" else "call agents")
    ).check()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(f"**/{user_type}")
    return email


async def log_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()


async def published_by_a_new_creator(browser: Browser, base: str, name: str, prompt: str) -> str:
    """An agent a creator who just signed up made and published; returns its id."""
    async with person(browser, base) as creator:
        await sign_up(creator, "creator")
        return await create_and_publish(creator, name, prompt)


async def create_and_publish(page: Page, name: str, prompt: str) -> str:
    await page.goto("/creator/agents/new")
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label(re.compile("^Description")).fill(f"{name} writes haiku on request.")
    await page.get_by_label("Category").fill("writing")
    await page.get_by_label(re.compile("^Price per call")).fill("0.01")
    await page.get_by_label(re.compile("^System prompt")).fill(prompt)
    await page.get_by_label(re.compile("^Model")).fill("mock-model")
    await page.get_by_role("button", name="Create draft").click()
    await expect(page.get_by_role("status")).to_contain_text("Created")
    agent_id = page.url.rsplit("/", 1)[1]
    await page.get_by_role("button", name="Publish").click()
    await expect(page.get_by_role("status")).to_contain_text("Published")
    return agent_id


async def create_key(page: Page, name: str) -> None:
    """Create an API key through the developer's keys page (the page then shows it once)."""
    await page.goto("/developer/keys")
    await page.get_by_label("New key name").fill(name)
    await page.get_by_role("button", name="Create key").click()


async def send(page: Page, text: str) -> None:
    """Send a message from the playground."""
    await page.get_by_label("Message").fill(text)
    await page.get_by_role("button", name="Send").click()


async def send_and_watch(page: Page, text: str) -> list[str]:
    """Send a playground message; the answer's text as it was at each change, in order."""
    await page.evaluate(
        """() => {
            window.__seen = [];
            const transcript = document.getElementById('transcript');
            new MutationObserver(() => {
                const texts = transcript.querySelectorAll('.message .text');
                const last = texts[texts.length - 1];
                if (last && last.parentElement.querySelector('.who').textContent !== 'You') {
                    const t = last.textContent;
                    if (window.__seen[window.__seen.length - 1] !== t) window.__seen.push(t);
                }
            }).observe(transcript, {childList: true, subtree: true, characterData: true});
        }"""
    )
    await send(page, text)
    await expect(page.locator("#chat-status")).to_have_text(re.compile("Done|^$"), timeout=20_000)
    seen: list[str] = await page.evaluate("() => window.__seen")
    return seen


async def test_creator_publishes_developer_chats_admin_suspends(
    browser: Browser, dashboard_stack: Stack, db_pool: asyncpg.Pool
) -> None:
    base = dashboard_stack.control_url
    async with person(browser, base) as creator:
        await sign_up(creator, "creator")
        agent_id = await create_and_publish(
            creator, "Browser Haiku", "Answer in haiku. BROWSER-SECRET"
        )

    async with person(browser, base) as developer:
        developer_email = await sign_up(developer, "developer")
        # Finds the agent in the marketplace.
        await developer.get_by_role("link", name="Marketplace").click()
        await developer.get_by_role("searchbox", name="Search").fill("Browser Haiku")
        await developer.get_by_role("button", name="Search").click()
        await developer.get_by_role("link", name="Browser Haiku").first.click()
        await expect(developer.get_by_role("heading", level=1)).to_have_text("Browser Haiku")
        await expect(developer.locator("#snippet-curl")).to_contain_text(
            f"https://gateway.agentlink.test/proxy/v1/agents/{agent_id}/chat"
        )
        # Creates a key: shown once, with a copy button.
        await create_key(developer, "laptop")
        key_text = await developer.locator("#created-key").text_content()
        assert key_text is not None
        assert re.fullmatch(r"ak_[0-9A-Za-z]{38}", key_text.strip())
        await expect(developer.get_by_role("button", name="Copy key")).to_be_visible()
        await developer.goto("/developer/keys")
        assert key_text.strip() not in await developer.content()
        # Buys a package through the (fake) Stripe checkout and sees the quota rise.
        await developer.get_by_role("link", name="Billing").click()
        await expect(developer.locator("#quota-remaining")).to_have_text("100")
        await developer.get_by_role("button", name="Buy Starter").click()
        await developer.wait_for_url(f"{dashboard_stack.stripe_url}/**")
        await developer.locator("#pay").click()
        await developer.wait_for_url(f"{base}/developer/billing")
        await expect(developer.get_by_role("status")).to_contain_text("Thank you")
        await expect(developer.locator("#quota-remaining")).to_have_text("1,100")
        await expect(developer.get_by_role("row").filter(has_text="starter")).to_contain_text(
            "completed"
        )
        # Chats in the playground: the answer arrives in several steps.
        await developer.goto(f"/playground/{agent_id}")
        steps = await send_and_watch(developer, f"Write about the sea {SLOW_STREAM}")
        assert steps[-1] == STREAMED_REPLY
        assert len([s for s in steps if s]) >= 3, steps
        assert all(b.startswith(a) for a, b in itertools.pairwise(steps)), steps
        await expect(developer.locator("#meter-rate")).to_contain_text("left")
        await expect(developer.locator("#meter-trials")).to_have_text("2 of 3")
        assert "BROWSER-SECRET" not in await developer.content()

        # An admin suspends the developer...
        admin_email = await make_admin(db_pool, AdminRole.SUPER_ADMIN)
        async with person(browser, base) as admin:
            await log_in(admin, admin_email)
            await admin.goto(f"/admin/users?q={developer_email}")
            row = admin.get_by_role("row").filter(has_text=developer_email)
            await row.get_by_text("Suspend…").click()
            await row.get_by_label(re.compile("Reason")).fill("browser test")
            await row.get_by_role("button", name=re.compile("^Suspend ")).click()
            await expect(admin.get_by_role("status")).to_contain_text("is suspended")

        # ...and the developer's next playground call fails, saying why.
        await send(developer, "still there?")
        await expect(developer.locator("#chat-error")).to_contain_text("suspended")


async def test_public_pages_in_light_and_dark_pass_axe(browser: Browser, base: str) -> None:
    problems: list[str] = []
    agent_id = await published_by_a_new_creator(browser, base, "Publicly Checked", "p")
    async with person(browser, base) as anonymous:
        problems += await check_pages(anonymous, (
            ("/", "landing"), ("/marketplace", "marketplace"),
            (f"/marketplace/{agent_id}", "agent detail"), ("/pricing", "pricing"),
            ("/login", "login"), ("/register", "register"),
        ))  # fmt: skip
    print(f"\ndashboard screenshots: {SCREENSHOTS}")
    assert problems == []


async def test_creator_studio_in_light_and_dark_passes_axe(
    browser: Browser, dashboard_stack: Stack, knowledge_worker: Worker
) -> None:
    problems: list[str] = []
    async with person(browser, dashboard_stack.control_url) as creator:
        await sign_up(creator, "creator")
        problems += await check_page(creator, "creator overview")
        agent_id = await create_and_publish(creator, "Axe Checked", "line one\nline two")
        problems += await check_page(creator, "creator agent editor")
        await creator.get_by_label(re.compile("^System prompt")).fill("line one\nline 2")
        await creator.get_by_role("button", name="Save as a new version").click()
        await creator.goto(f"/creator/agents/{agent_id}/versions")
        problems += await check_page(creator, "creator versions")
        await creator.goto(f"/creator/agents/{agent_id}/versions/diff?from=1&to=2")
        problems += await check_page(creator, "creator version diff")
        problems += await check_pages(creator, (
            ("/creator/agents", "creator agents"), ("/creator/analytics", "creator analytics"),
            ("/creator/earnings", "creator earnings"), ("/creator/profile", "creator profile"),
        ))  # fmt: skip
        # Knowledge files: uploaded through the form, followed live while the worker runs.
        await creator.goto(f"/creator/agents/{agent_id}/knowledge")
        await creator.get_by_label(re.compile("^Files")).set_input_files(
            files=[{"name": "faq.md", "mimeType": "text/markdown",
                    "buffer": b"# Opening hours\n\nThe shop opens at nine every weekday."}]
        )  # fmt: skip
        await creator.get_by_role("button", name="Upload", exact=True).click()
        await expect(creator.locator("main > .notice").first).to_contain_text("Uploaded faq.md")
        row = creator.get_by_role("row").filter(has_text="faq.md")
        await expect(row).to_contain_text("processing")
        problems += await check_page(creator, "knowledge files")
        await knowledge_worker.process_uploads()
        await expect(row).to_contain_text("ready")  # without a reload: the page's script
        await expect(creator.locator("#knowledge-live")).to_have_text("faq.md: ready")
    assert problems == []


async def test_developer_console_and_playground_pass_axe_down_to_phone_width(
    browser: Browser, dashboard_stack: Stack
) -> None:
    base = dashboard_stack.control_url
    problems: list[str] = []
    agent_id = await published_by_a_new_creator(browser, base, "Console Checked", "c")
    async with person(browser, base) as developer:
        await sign_up(developer, "developer")
        problems += await check_page(developer, "developer overview")
        await create_key(developer, "shown once")
        problems += await check_page(developer, "developer keys with a new key")
        # The key's controls: a cap, a rate limit and the allow-list set in the page.
        await developer.goto("/developer/keys")
        await developer.get_by_role("link", name="Controls").first.click()
        await developer.get_by_label(re.compile("^Spend cap")).fill("50")
        await developer.get_by_label("Per", exact=True).select_option("month")
        await developer.get_by_label(re.compile("^Rate limit")).fill("20")
        await developer.get_by_label(re.compile("^Allowed agents")).fill(agent_id)
        await developer.get_by_role("button", name="Save controls").click()
        await expect(developer.get_by_role("status")).to_contain_text("Saved")
        await expect(developer.locator("#spend-used")).to_contain_text("0 of 50 units")
        problems += await check_page(developer, "developer key controls")
        await developer.get_by_role("link", name="← API keys").click()
        await expect(developer.get_by_role("row").filter(has_text="shown once")).to_contain_text(
            "0 of 50 units a month · 20 calls/min · 1 agent only"
        )
        await developer.goto(f"/playground/{agent_id}")
        await send_and_watch(developer, "hello")
        problems += await check_page(developer, "playground")
        # A webhook endpoint through the form: its secret shown once, then its delivery log.
        await developer.goto("/developer/webhooks")
        await developer.get_by_label(re.compile("^Endpoint URL")).fill(
            f"{dashboard_stack.mock_url}/hook"
        )
        await developer.get_by_role("checkbox", name=re.compile("Payment succeeded")).check()
        await developer.get_by_role("button", name="Add endpoint").click()
        await expect(developer.locator("#created-secret")).to_contain_text("whsec_")
        problems += await check_page(developer, "developer webhooks with a new secret")
        await developer.get_by_role("link", name="Delivery log").click()
        await developer.get_by_role("button", name="Send a test event").click()
        await expect(developer.locator("#deliveries")).to_contain_text("webhook.test")
        problems += await check_page(developer, "developer webhook deliveries")
        problems += await check_pages(developer, (
            ("/developer/usage", "developer usage"), ("/developer/billing", "developer billing"),
            ("/playground", "playground picker"), ("/account", "account"),
        ))  # fmt: skip
        # Phone width: nothing wider than the screen.
        await developer.set_viewport_size({"width": 360, "height": 780})
        for path, name in (("/developer/usage", "phone usage"),
                           (f"/playground/{agent_id}", "phone playground"),
                           ("/marketplace", "phone marketplace")):  # fmt: skip
            await developer.goto(path)
            overflow = await developer.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} is wider than a phone"
            problems += await check_page(developer, name)
    assert problems == []


async def test_admin_pages_in_light_and_dark_pass_axe(
    browser: Browser, dashboard_stack: Stack, db_pool: asyncpg.Pool
) -> None:
    problems: list[str] = []
    admin_email = await make_admin(db_pool, AdminRole.SUPER_ADMIN)
    async with person(browser, dashboard_stack.control_url) as admin:
        await log_in(admin, admin_email)
        problems += await check_pages(admin, (
            ("/admin", "admin stats"), ("/admin/users", "admin users"),
            ("/admin/agents", "admin agents"), ("/admin/moderation", "admin moderation"),
            ("/admin/settlements", "admin settlements"), ("/admin/flags", "admin flags"),
            ("/admin/system", "admin system"), ("/admin/audit", "admin audit"),
        ))  # fmt: skip
    assert problems == []


@pytest.fixture(scope="module")
def attacker() -> Iterator[str]:
    """A page on another origin whose form posts to the dashboard, submitted on load."""

    async def page(request: Request) -> Response:
        target = request.query_params["target"]
        return HTMLResponse(
            f"""<!doctype html><html lang="en"><body><form method="post" action="{target}">
            <input name="name" value="pwned"></form>
            <script>document.forms[0].submit()</script></body></html>"""
        )

    with serve(Starlette(routes=[Route("/", page), Route("/healthz", page)]),
               health_path="/healthz?target=x") as url:  # fmt: skip
        yield url


async def test_a_cross_site_form_post_is_refused(
    browser: Browser, dashboard_stack: Stack, attacker: str, db_pool: asyncpg.Pool
) -> None:
    base = dashboard_stack.control_url  # http://127.0.0.1:<port>
    port = attacker.rsplit(":", 1)[1]
    async with person(browser, base) as victim:
        email = await sign_up(victim, "developer")
        # Another site (localhost is not 127.0.0.1's site), and the same site on another
        # port (SameSite cookies travel there, so only the origin check stops it).
        for origin in (f"http://localhost:{port}", f"http://127.0.0.1:{port}"):
            await victim.goto(f"{origin}/?target={base}/developer/keys")
            await victim.wait_for_url(f"{base}/developer/keys")
            await expect(victim.get_by_role("heading", level=1)).to_have_text("Request refused")
        keys = await db_pool.fetchval(
            """SELECT count(*) FROM api_keys k JOIN users u ON u.id = k.user_id
               WHERE u.email = $1 AND k.name = 'pwned'""",
            email,
        )
        assert keys == 0
        # The victim's own form still works.
        await create_key(victim, "legit")
        await expect(victim.locator("#created-key")).to_contain_text("ak_")


async def test_logged_out_visitors_log_in_and_come_back(browser: Browser, base: str) -> None:
    async with person(browser, base) as page:
        email = await sign_up(page, "developer")
        await page.get_by_role("button", name="Log out").click()
        await expect(page.get_by_role("status")).to_have_text("You are logged out.")
        await page.goto("/developer/usage?days=7")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/developer/usage?days=7")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Usage")


async def test_another_users_page_stays_closed_when_the_id_is_changed(
    browser: Browser, base: str
) -> None:
    agent_id = await published_by_a_new_creator(browser, base, "Private Prompt", "OWNER-ONLY")
    async with person(browser, base) as other:
        await sign_up(other, "creator")
        response = await other.goto(f"/creator/agents/{agent_id}")
        assert response is not None
        assert response.status == 403
        await expect(other.get_by_role("alert")).to_contain_text("belongs to another creator")
        assert "OWNER-ONLY" not in await other.content()


async def test_forms_work_without_javascript(browser: Browser, base: str) -> None:
    agent_id = await published_by_a_new_creator(browser, base, "No Script", "plain")
    async with person(browser, base, java_script_enabled=False) as developer:
        await sign_up(developer, "developer")
        await developer.goto("/developer/keys")
        await developer.get_by_label("New key name").fill("no js")
        await developer.get_by_role("button", name="Create key").click()
        await expect(developer.locator("#created-key")).to_contain_text("ak_")
        await developer.goto(f"/playground/{agent_id}")
        await developer.get_by_label("Message").fill("without scripts")
        await developer.get_by_role("button", name="Send").click()
        await expect(developer.locator("#transcript")).to_contain_text(
            "Mock reply to: without scripts"
        )
        await developer.goto("/developer/keys")
        await developer.get_by_text("Revoke…").first.click()  # <details> opens without script
        await developer.get_by_role("button", name="Revoke key").first.click()
        await expect(developer.get_by_role("status")).to_contain_text("Key revoked")
