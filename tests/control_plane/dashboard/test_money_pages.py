"""The money pages over HTTP, to the cent: a creator's earnings go from pending to available
when an admin settles them on the admin page, the creator withdraws through the form (once,
however often the form is sent), and the refusals show on the page."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import httpx
import redis.asyncio as redis_asyncio

from common.domain import AdminRole
from tests.control_plane.dashboard.conftest import Browserless, Stack
from tests.control_plane.dashboard.support import find, make_admin, user_id_of
from tests.control_plane.earnings.helpers import agent_of, caller, event, fund, ingest


def balance(page: str, name: str) -> str:
    return find(rf'id="balance-{name}">([^<]+)<', page)


async def test_earnings_are_settled_on_the_admin_page_and_withdrawn_once(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:  # fmt: skip
    email = await browserless.register("creator")
    creator_id = await user_id_of(db_pool, email)
    empty = await browserless.get("/creator/earnings")
    assert empty.status_code == 200
    assert "No settlements yet" in empty.text
    assert balance(empty.text, "available") == "$0.00"

    agent = await agent_of(db_pool, creator_id, "5")  # $5 a call
    await ingest(db_pool, redis, [event(await caller(db_pool), agent) for _ in range(4)])
    earning = await browserless.get("/creator/earnings")
    assert balance(earning.text, "pending") == "$20.00"
    assert balance(earning.text, "available") == "$0.00"

    admin = await make_admin(db_pool, AdminRole.SUPER_ADMIN)
    await another.login(admin)
    listed = await another.get("/admin/settlements")
    assert listed.status_code == 200
    row = find(
        rf'(<tr>\s*<td><a href="/admin/users/{creator_id}">.*?</tr>)',
        listed.text.replace("\n", " "),
    )
    for amount in ("$20.00", "$4.00", "$16.00"):  # gross, fee, net
        assert amount in row
    # Today's period has not ended: the accruals move three days back, as in the API's test.
    await db_pool.execute(
        """UPDATE earnings_accruals SET accrued_hour = accrued_hour - interval '3 days'
           WHERE creator_id = $1""",
        creator_id,
    )
    settled = await another.post("/admin/settlements/trigger", {"creator_id": creator_id})
    assert settled.status_code == 303
    after = await another.get("/admin/settlements", params={"creator_id": creator_id})
    assert "Settled 1 period: $20 gross, $4 in fees, $16 to creators." in after.text
    assert 'id="settlement-history"' in after.text
    audited = await db_pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'settlement.trigger' AND target_id = $1",
        creator_id,
    )
    assert audited == 1

    settled_page = await browserless.get("/creator/earnings")
    assert balance(settled_page.text, "pending") == "$0.00"
    assert balance(settled_page.text, "available") == "$16.00"
    assert 'id="settlements"' in settled_page.text

    # Refusals stay on the page, next to the field.
    too_small = await browserless.post("/creator/earnings/withdrawals", {"amount": "5"})
    assert too_small.status_code == 400
    assert 'id="amount-error"' in too_small.text
    too_much = await browserless.post("/creator/earnings/withdrawals", {"amount": "16.01"})
    assert too_much.status_code == 409
    assert 'id="amount-error"' in too_much.text
    garbage = await browserless.post("/creator/earnings/withdrawals", {"amount": "ten"})
    assert garbage.status_code == 400

    # The same form sent twice is one withdrawal.
    form = await browserless.get("/creator/earnings")
    key = find(r'name="idempotency_key" value="([0-9a-f-]{36})"', form.text)
    for _ in range(2):
        sent = await browserless.post(
            "/creator/earnings/withdrawals", {"amount": "$12.50", "idempotency_key": key}
        )
        assert sent.status_code == 303
    done = await browserless.get("/creator/earnings")
    assert "That withdrawal was already requested." in done.text
    assert balance(done.text, "available") == "$3.50"
    assert balance(done.text, "in-flight") == "$12.50"
    rows = await db_pool.fetch(
        "SELECT amount, fee, status FROM withdrawals WHERE creator_id = $1", creator_id
    )
    assert [(r["amount"], r["fee"]) for r in rows] == [(Decimal("12.50"), Decimal("2.50"))]
    assert "$10.00" in done.text  # what is paid out after the 20% fee


async def test_money_pages_are_for_their_own_people(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool
) -> None:
    await browserless.register("developer")
    assert (await browserless.get("/creator/earnings")).status_code == 403
    refused = await browserless.post("/creator/earnings/withdrawals", {"amount": "10"})
    assert refused.status_code == 403
    support = await make_admin(db_pool, AdminRole.SUPPORT)
    await another.login(support)
    assert (await another.get("/admin/settlements")).status_code == 403
    assert (await another.post("/admin/settlements/trigger", {"creator_id": ""})).status_code == 403


async def test_a_creator_connects_stripe_and_withdraws_to_it(
    browserless: Browserless, dashboard_stack: Stack, db_pool: asyncpg.Pool
) -> None:
    email = await browserless.register("creator")
    creator_id = await user_id_of(db_pool, email)
    before = await browserless.get("/creator/earnings")
    assert "Connect Stripe" in before.text
    assert 'name="method" value="stripe"' in before.text

    connected = await browserless.post("/creator/earnings/payout-account")
    assert connected.status_code == 200, connected.text
    onboarding = find(r'id="stripe-onboarding" href="([^"]+)"', connected.text)
    assert onboarding.startswith(dashboard_stack.stripe_url)
    account_id = await db_pool.fetchval(
        "SELECT stripe_account_id FROM creator_profiles WHERE user_id = $1", creator_id
    )
    waiting = await browserless.get("/creator/earnings")
    assert f"Stripe has not enabled payouts to <code>{account_id}</code> yet" in waiting.text
    async with httpx.AsyncClient(base_url=dashboard_stack.stripe_url) as stripe:
        done = await stripe.post(f"/_fake/connect/accounts/{account_id}/onboard")
        assert done.status_code == 200
    ready = await browserless.get("/creator/earnings")
    assert f"Payouts by Stripe go to account <code>{account_id}</code>" in ready.text

    await fund(db_pool, creator_id, Decimal("25"))
    sent = await browserless.post(
        "/creator/earnings/withdrawals", {"amount": "20", "method": "stripe"}
    )
    assert sent.status_code == 303, sent.text
    row = await db_pool.fetchrow(
        "SELECT amount, payout_provider, destination FROM withdrawals WHERE creator_id = $1",
        creator_id,
    )
    assert row is not None
    assert (row["amount"], row["payout_provider"], row["destination"]) == (
        Decimal(20),
        "stripe",
        account_id,
    )
