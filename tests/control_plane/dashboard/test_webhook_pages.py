"""Developer webhooks over HTTP: an endpoint registered through the form (its secret shown
once), a test event sent from the page and delivered by the worker's real delivery job to a
real receiver that verifies the signature, the delivery log with its attempts, re-enable and
delete; another developer's endpoint answers 404 whatever they try."""

from __future__ import annotations

import asyncpg

from control_plane.webhooks.delivery import Deliverer
from tests.control_plane.dashboard.conftest import Browserless
from tests.control_plane.dashboard.support import find
from tests.control_plane.webhooks.helpers import drain
from tests.control_plane.webhooks.receiver import Receiver

SECRET = r"(whsec_[0-9A-Za-z_-]+)"


async def test_an_endpoint_is_added_tested_logged_and_deleted_through_the_pages(
    browserless: Browserless, receiver: Receiver, deliver: Deliverer, db_pool: asyncpg.Pool
) -> None:
    await browserless.register("developer")
    empty = await browserless.get("/developer/webhooks")
    assert empty.status_code == 200
    assert "No endpoints yet." in empty.text

    no_events = await browserless.post("/developer/webhooks", {"url": receiver.url + "/hook"})
    assert no_events.status_code == 400
    assert 'id="events-error"' in no_events.text
    bad_url = await browserless.post(
        "/developer/webhooks", {"url": "ftp://example.com/hook", "events": "quota.low"}
    )
    assert bad_url.status_code == 400
    assert 'id="url-error"' in bad_url.text

    created = await browserless.post(
        "/developer/webhooks",
        {"url": receiver.url + "/hook", "events": "payment.succeeded",
         "description": "billing system", "quota_low_threshold": "5"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    secret = find(SECRET, created.text)
    receiver.secret = secret
    listing = await browserless.get("/developer/webhooks")
    assert secret not in listing.text  # shown once
    assert "billing system" in listing.text
    webhook_id = find(r'href="/developer/webhooks/([0-9a-f-]{36})"', listing.text)
    log_page = f"/developer/webhooks/{webhook_id}"

    tested = await browserless.post(f"{log_page}/test")
    assert tested.status_code == 303
    assert tested.headers["location"] == log_page
    queued = await browserless.get(log_page)
    assert "Test event queued" in queued.text
    assert "webhook.test" in queued.text
    assert "not sent yet" in queued.text

    await drain(deliver, db_pool, webhook_id)

    delivered = await browserless.get(log_page)
    row = find(r'(<tr>\s*<td>[^<]*</td>\s*<td><code>webhook\.test</code>.*?</tr>)',
               delivered.text.replace("\n", " "))  # fmt: skip
    assert '<span class="badge ok">delivered</span>' in row
    assert "HTTP 200" in row
    assert "1 attempt" in row
    [got] = receiver.events("webhook.test")
    assert got.signature_ok  # signed with the secret the page showed

    # Disabled by the worker after failures: the page says why and re-enables it.
    await db_pool.execute(
        """UPDATE webhooks SET active = false, disabled_reason = '10 deliveries failed in a row',
                  disabled_at = now() WHERE id = $1""",
        webhook_id,
    )
    disabled = await browserless.get(log_page)
    assert "10 deliveries failed in a row" in disabled.text
    assert (await browserless.post(f"{log_page}/test")).status_code == 409
    enabled = await browserless.post(f"{log_page}/enable")
    assert enabled.status_code == 303
    assert "Send a test event" in (await browserless.get(log_page)).text

    deleted = await browserless.post(f"{log_page}/delete")
    assert deleted.status_code == 303
    assert "No endpoints yet." in (await browserless.get("/developer/webhooks")).text
    assert (await browserless.get(log_page)).status_code == 404


async def test_another_developers_endpoint_is_not_found(
    browserless: Browserless, another: Browserless, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    await browserless.register("developer")
    created = await browserless.post(
        "/developer/webhooks", {"url": receiver.url + "/other", "events": "quota.low"}
    )
    assert created.status_code == 201
    webhook_id = find(r'href="/developer/webhooks/([0-9a-f-]{36})"', created.text)
    await another.register("developer")
    page = f"/developer/webhooks/{webhook_id}"
    assert (await another.get(page)).status_code == 404
    for action in ("test", "enable", "delete"):
        assert (await another.post(f"{page}/{action}")).status_code == 404, action
    assert receiver.url + "/other" not in (await another.get("/developer/webhooks")).text
    still = await db_pool.fetchval("SELECT count(*) FROM webhooks WHERE id = $1", webhook_id)
    assert still == 1
    deliveries = await db_pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1", webhook_id
    )
    assert deliveries == 0


async def test_a_creator_has_webhook_pages_of_their_own(
    browserless: Browserless, another: Browserless, receiver: Receiver
) -> None:
    await browserless.register("creator")
    page = await browserless.get("/creator/webhooks")
    assert page.status_code == 200
    assert "One of your agents was published" in page.text
    assert "quota_low_threshold" not in page.text  # a creator has no quota
    created = await browserless.post(
        "/creator/webhooks", {"url": receiver.url + "/creator", "events": "agent.published"}
    )
    assert created.status_code == 201, created.text
    webhook_id = find(r'href="/creator/webhooks/([0-9a-f-]{36})"', created.text)
    log = await browserless.get(f"/creator/webhooks/{webhook_id}")
    assert log.status_code == 200
    assert f'action="/creator/webhooks/{webhook_id}/test"' in log.text
    assert (await browserless.get("/developer/webhooks")).status_code == 403
    await another.register("developer")
    assert (await another.get(f"/developer/webhooks/{webhook_id}")).status_code == 404
    assert (await another.get("/creator/webhooks")).status_code == 403
