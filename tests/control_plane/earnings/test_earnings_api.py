"""The money-out API over real HTTP: a creator's balances, settlements and withdrawals, and the
admin settlement routes (RBAC, audit)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio

from common.domain import AdminRole
from tests.control_plane.api_client import admin_token, assert_error, bearer, register
from tests.control_plane.earnings.helpers import agent_of, caller, event, fund, ingest


async def creator_session(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    session = await register(client, "creator")
    return session["user"]["id"], bearer(session["access_token"])


async def funded_creator(
    client: httpx.AsyncClient, db: asyncpg.Pool, balance: str
) -> dict[str, str]:
    """A new creator with `balance` available; returns their auth headers."""
    creator_id, headers = await creator_session(client)
    await fund(db, creator_id, Decimal(balance))
    return headers


async def test_a_creator_sees_pending_then_available_then_withdraws(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    creator_id, headers = await creator_session(client)
    agent = await agent_of(db_pool, creator_id, "5")
    developer = await caller(db_pool)
    await ingest(db_pool, redis, [event(developer, agent) for _ in range(4)])

    earnings = (await client.get("/api/v1/creators/me/earnings", headers=headers)).json()
    assert earnings["pending_earnings"] == "20"
    assert earnings["pending_platform_fee"] == "4"
    assert earnings["available_balance"] == "0"
    assert earnings["withdrawal_minimum"] == "10"

    _, admin = await admin_token(db_pool, AdminRole.SUPER_ADMIN)
    pending = await client.get("/api/v1/admin/settlements/pending", headers=bearer(admin))
    assert pending.status_code == 200, pending.text
    mine = [c for c in pending.json()["creators"] if c["creator_id"] == creator_id]
    assert mine[0]["gross"] == "20"
    assert mine[0]["estimated_net"] == "16"
    assert mine[0]["calls"] == 4

    future = "2999-01-01T00:00:00Z"  # not allowed: periods that have not ended
    refused = await client.post(
        "/api/v1/admin/settlements/trigger", headers=bearer(admin), json={"through": future}
    )
    assert_error(refused, 400, "40002")
    # Settlements run from "now"; today's period is not over, so use the job's own clock:
    # settle with `through` at the end of the period, which is in the past by construction.
    await db_pool.execute(
        """UPDATE earnings_accruals SET accrued_hour = accrued_hour - interval '3 days'
           WHERE creator_id = $1""",
        creator_id,
    )
    triggered = await client.post(
        "/api/v1/admin/settlements/trigger", headers=bearer(admin), json={"creator_id": creator_id}
    )
    assert triggered.status_code == 200, triggered.text
    [settlement] = triggered.json()["settlements"]
    assert (settlement["gross"], settlement["platform_fee"], settlement["net"]) == ("20", "4", "16")
    audit = await db_pool.fetchrow(
        "SELECT * FROM audit_log WHERE action = 'settlement.trigger' AND target_id = $1",
        creator_id,
    )
    assert audit is not None
    assert audit["details"]["settlements"] == 1

    earnings = (await client.get("/api/v1/creators/me/earnings", headers=headers)).json()
    assert (earnings["pending_earnings"], earnings["available_balance"]) == ("0", "16")
    assert earnings["total_earnings"] == "16"
    history = (await client.get("/api/v1/creators/me/settlements", headers=headers)).json()
    assert [s["id"] for s in history["settlements"]] == [settlement["id"]]
    admin_history = await client.get(
        "/api/v1/admin/settlements/history",
        headers=bearer(admin),
        params={"creator_id": creator_id},
    )
    assert [s["id"] for s in admin_history.json()["settlements"]] == [settlement["id"]]

    made = await client.post(
        "/api/v1/creators/me/withdrawals", headers=headers, json={"amount": "12.50"}
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["amount"], body["fee"], body["net_amount"]) == ("12.5", "2.5", "10")
    assert (body["status"], body["method"]) == ("pending", "ledger")
    listed = (await client.get("/api/v1/creators/me/withdrawals", headers=headers)).json()
    assert [w["id"] for w in listed["withdrawals"]] == [body["id"]]
    earnings = (await client.get("/api/v1/creators/me/earnings", headers=headers)).json()
    assert (earnings["available_balance"], earnings["withdrawals_in_flight"]) == ("3.5", "12.5")


@pytest.mark.parametrize(
    ("amount", "status", "code"),
    [
        ("9.99", 400, "40002"),  # below the minimum (property 17)
        ("10.001", 400, "40002"),  # not whole cents
        ("0", 400, "40002"),
        ("-5", 400, "40002"),
        ("abc", 400, "40002"),
        ("1000", 409, "40901"),  # more than the balance
    ],
)
async def test_bad_withdrawals_are_refused_with_a_clear_error(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, amount: str, status: int, code: str
) -> None:
    headers = await funded_creator(client, db_pool, "50")
    response = await client.post(
        "/api/v1/creators/me/withdrawals", headers=headers, json={"amount": amount}
    )
    assert_error(response, status, code)
    earnings = (await client.get("/api/v1/creators/me/earnings", headers=headers)).json()
    assert earnings["available_balance"] == "50"


async def test_a_payout_method_that_is_not_offered_is_refused(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    headers = await funded_creator(client, db_pool, "50")
    response = await client.post(
        "/api/v1/creators/me/withdrawals",
        headers=headers,
        json={"amount": "20", "method": "stripe"},
    )
    body = assert_error(response, 400, "40002")
    assert body["error"]["details"][0]["field"] == "method"


async def test_twenty_parallel_http_withdrawals_never_overspend(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    headers = await funded_creator(client, db_pool, "199.99")
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/creators/me/withdrawals", headers=headers, json={"amount": "20"})
            for _ in range(20)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 9 + [409] * 11
    earnings = (await client.get("/api/v1/creators/me/earnings", headers=headers)).json()
    assert earnings["available_balance"] == "19.99"
    assert earnings["withdrawals_in_flight"] == "180"


async def test_an_idempotency_key_makes_a_retry_safe(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    headers = await funded_creator(client, db_pool, "100")
    retry = {**headers, "Idempotency-Key": "withdraw-once"}
    first = await client.post(
        "/api/v1/creators/me/withdrawals", headers=retry, json={"amount": "40"}
    )
    again = await client.post(
        "/api/v1/creators/me/withdrawals", headers=retry, json={"amount": "40"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    earnings = (await client.get("/api/v1/creators/me/earnings", headers=headers)).json()
    assert earnings["available_balance"] == "60"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/admin/settlements/pending"),
        ("POST", "/api/v1/admin/settlements/trigger"),
        ("GET", "/api/v1/admin/settlements/history"),
    ],
)
async def test_settlement_admin_routes_need_the_payments_permission(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, method: str, path: str
) -> None:
    for role in (AdminRole.MODERATOR, AdminRole.SUPPORT):
        _, token = await admin_token(db_pool, role)
        response = await client.request(method, path, headers=bearer(token), json={})
        assert_error(response, 403, "40301")
    _, creator = await creator_session(client)
    assert_error(await client.request(method, path, headers=creator, json={}), 403, "40301")
    assert_error(await client.request(method, path, json={}), 401, "40101")


async def test_creator_money_routes_are_for_creators_only(client: httpx.AsyncClient) -> None:
    developer = bearer((await register(client, "developer"))["access_token"])
    for path in ("earnings", "settlements", "withdrawals"):
        response = await client.get(f"/api/v1/creators/me/{path}", headers=developer)
        assert_error(response, 403, "40301")
