"""The payment routes over real HTTP, against a control plane that uses the fake Stripe and
Coinbase servers: packages, checkout (what reaches the provider), history and detail, the
webhook receivers, the admin list, refund and manual credit; and a clear 4xx in the envelope
for bad input to each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from control_plane.auth.principal import Principal, UserType
from control_plane.payments import service
from control_plane.payments.schemas import CheckoutBody
from control_plane.payments.services import PaymentServices
from control_plane.payments.settings import PaymentSettings
from devstack.servers import free_port
from fake_payments import FakeCoinbase, FakeStripe
from tests.control_plane.api_client import Admin, assert_error, bearer, register
from tests.control_plane.developers.support import control_state
from tests.control_plane.payments.support import live_quota, load_live_quota
from tests.factories import Developer, shard_of
from tests.processes import Served

P = "/api/v1/payments"
A = "/api/v1/admin"


@pytest_asyncio.fixture
async def api(payments_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=payments_url, timeout=30) as client:
        yield client


@pytest_asyncio.fixture
async def developer(api: httpx.AsyncClient) -> dict[str, Any]:
    return await register(api, "developer")


@pytest_asyncio.fixture
async def crypto_on(api: httpx.AsyncClient, super_admin: Admin) -> AsyncIterator[None]:
    """Crypto payments on for one test (the seed ships the flag off, and other tests check
    that it is)."""
    admin = super_admin.headers
    flag = f"{A}/feature-flags/enable_crypto_payments"
    assert (await api.put(flag, headers=admin, json={"enabled": True})).status_code == 200
    yield
    assert (await api.put(flag, headers=admin, json={"enabled": False})).status_code == 200


async def checkout(api: httpx.AsyncClient, user: dict[str, Any], **body: Any) -> httpx.Response:
    payload = {"package": "starter", "provider": "stripe", **body}
    return await api.post(f"{P}/checkout", headers=bearer(user["access_token"]), json=payload)


async def test_packages_are_public_and_the_seed_defaults(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{P}/packages")
    assert response.status_code == 200
    body = response.json()
    assert [(p["id"], p["units"], p["price_usd"]) for p in body["packages"]] == [
        ("starter", 1000, "10.00"), ("pro", 10000, "80.00"), ("enterprise", 100000, "500.00"),
    ]  # fmt: skip
    assert body["providers"] == ["coinbase", "stripe"]


async def test_stripe_checkout_creates_a_pending_payment_and_a_session(
    api: httpx.AsyncClient, developer: dict[str, Any], fake_stripe: Served[FakeStripe]
) -> None:
    response = await checkout(api, developer, package="pro")
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["status"] == "pending"
    assert (payment["package"], payment["units"], payment["amount_usd"]) == ("pro", 10000, "80.00")
    assert payment["checkout_url"].startswith(f"{fake_stripe.url}/c/pay/cs_test_")
    [sent] = [r for r in fake_stripe.fake.recorder.requests
              if r["body"].get("client_reference_id") == payment["id"]]  # fmt: skip
    assert sent["path"] == "/v1/checkout/sessions"
    assert sent["headers"]["idempotency-key"] == f"checkout-{payment['id']}"
    assert sent["body"]["metadata"]["payment_id"] == payment["id"]
    assert sent["body"]["payment_intent_data"]["metadata"]["payment_id"] == payment["id"]
    assert sent["body"]["line_items"][0]["price_data"]["unit_amount"] == "8000"
    assert sent["body"]["success_url"].startswith("https://app.agentlink.test/paid")
    assert "sk_test_agentlink_payments" not in str(sent)  # the key is recorded masked


async def test_coinbase_checkout_needs_the_crypto_flag(
    api: httpx.AsyncClient, developer: dict[str, Any], super_admin: Admin,
    fake_coinbase: Served[FakeCoinbase],
) -> None:  # fmt: skip
    admin = super_admin.headers
    refused = await checkout(api, developer, provider="coinbase")
    assert_error(refused, 403, "40301")
    flag = f"{A}/feature-flags/enable_crypto_payments"
    await api.put(flag, headers=admin, json={"enabled": True})
    try:
        response = await checkout(api, developer, provider="coinbase")
    finally:
        await api.put(flag, headers=admin, json={"enabled": False})
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["checkout_url"].startswith(f"{fake_coinbase.url}/pay/")
    [sent] = [r for r in fake_coinbase.fake.recorder.requests
              if r["body"] and r["body"]["metadata"]["payment_id"] == payment["id"]]  # fmt: skip
    assert sent["body"]["local_price"] == {"amount": "10.00", "currency": "USD"}
    assert sent["headers"]["x-cc-version"] == "2018-03-22"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"package": "platinum", "provider": "stripe"}, 400, "40002", "package"),
        ({"package": "starter", "provider": "paypal"}, 400, "40002", "provider"),
        ({"provider": "stripe"}, 400, "40002", "body"),
        ({"package": "starter", "provider": "stripe", "units": 10**9}, 400, "40002", "body"),
        ({"package": "", "provider": "stripe"}, 400, "40002", "package"),
        ({"package": 7, "provider": "stripe"}, 400, "40002", "package"),
        ([], 400, "40002", None),
    ],
)
async def test_bad_checkout_input_is_a_clear_4xx(  # noqa: PLR0917
    api: httpx.AsyncClient, developer: dict[str, Any], body: Any, status: int, code: str,
    field: str | None,
) -> None:  # fmt: skip
    response = await api.post(f"{P}/checkout", headers=bearer(developer["access_token"]),
                              json=body)  # fmt: skip
    error = assert_error(response, status, code)
    if field not in (None, "body"):
        assert error["error"]["details"][0]["field"] == field


async def test_checkout_refuses_non_json_strangers_and_creators(
    api: httpx.AsyncClient, developer: dict[str, Any]
) -> None:
    auth = bearer(developer["access_token"])
    assert_error(await api.post(f"{P}/checkout", headers=auth, content=b"{nope"), 400, "40001")
    assert_error(await api.post(f"{P}/checkout", json={}), 401, "40101")
    creator = await register(api, "creator")
    assert_error(await checkout(api, creator), 403, "40301")


async def test_a_provider_that_does_not_answer_is_503_and_the_payment_failed(
    payments_env: dict[str, str], db: asyncpg.Pool, redis: redis_asyncio.Redis,
    api: httpx.AsyncClient, developer: dict[str, Any],
) -> None:  # fmt: skip
    env = {**payments_env, "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
           "PAYMENT_PROVIDER_TIMEOUT_S": "0.5"}  # fmt: skip
    state = control_state(env, db, redis)
    state.payments = PaymentServices.build(PaymentSettings.from_env(env), redis)
    me = (await api.get("/api/v1/developers/me",
                        headers=bearer(developer["access_token"]))).json()  # fmt: skip
    principal = Principal(me["id"], UserType.DEVELOPER, None, 0)
    try:
        with pytest.raises(service.ProviderError):
            await service.checkout(state, principal, CheckoutBody("starter", "stripe"))
    finally:
        await state.payments.aclose()
    row = await db.fetchrow("SELECT status, failure_reason FROM payments WHERE user_id = $1",
                            me["id"])  # fmt: skip
    assert row is not None
    assert (row["status"], row["failure_reason"]) == ("failed", "checkout not created")


async def test_history_is_own_newest_first_and_paginated(
    api: httpx.AsyncClient, developer: dict[str, Any]
) -> None:
    auth = bearer(developer["access_token"])
    ids = [(await checkout(api, developer)).json()["id"] for _ in range(3)]
    first = await api.get(f"{P}/history", headers=auth, params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    second = (await api.get(f"{P}/history", headers=auth,
                            params={"limit": 2, "cursor": page["next_cursor"]})).json()  # fmt: skip
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    other = await register(api, "developer")
    theirs = (await api.get(f"{P}/history", headers=bearer(other["access_token"]))).json()
    assert theirs["items"] == []
    for params in ({"limit": 0}, {"limit": 101}, {"cursor": "garbage"}, {"colour": "red"}):
        assert_error(await api.get(f"{P}/history", headers=auth, params=params), 400, "40002")


async def test_payment_detail_is_for_its_owner_only(
    api: httpx.AsyncClient, developer: dict[str, Any]
) -> None:
    payment = (await checkout(api, developer)).json()
    own = await api.get(f"{P}/{payment['id']}", headers=bearer(developer["access_token"]))
    assert own.status_code == 200
    assert own.json()["id"] == payment["id"]
    other = await register(api, "developer")
    for path in (payment["id"], "not-a-uuid", "00000000-0000-4000-8000-000000000000"):
        response = await api.get(f"{P}/{path}", headers=bearer(other["access_token"]))
        assert_error(response, 404, "40404")


@pytest.mark.parametrize("provider", ["stripe", "coinbase"])
async def test_an_unverifiable_webhook_is_400_and_stores_nothing(
    api: httpx.AsyncClient, db: asyncpg.Pool, provider: str
) -> None:
    before = await db.fetchval("SELECT count(*) FROM payment_events")
    body = b'{"id": "evt_forged", "object": "event", "type": "checkout.session.completed"}'
    headers = {"Stripe-Signature": "t=1,v1=" + "0" * 64, "X-CC-Webhook-Signature": "0" * 64}
    for sent in ({}, headers):
        response = await api.post(f"{P}/webhook/{provider}", content=body, headers=sent)
        assert_error(response, 400, "40001")
    assert await db.fetchval("SELECT count(*) FROM payment_events") == before


async def test_admin_lists_payments_with_filters(
    api: httpx.AsyncClient, developer: dict[str, Any], super_admin: Admin
) -> None:
    admin = super_admin.headers
    mine = [(await checkout(api, developer)).json()["id"] for _ in range(2)]
    me = (await api.get("/api/v1/developers/me",
                        headers=bearer(developer["access_token"]))).json()  # fmt: skip
    listed = await api.get(f"{A}/payments", headers=admin,
                           params={"user_id": me["id"], "status": "pending"})  # fmt: skip
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == 2
    assert {item["payment"]["id"] for item in body["items"]} == set(mine)
    assert all(item["email"] == me["email"] for item in body["items"])
    by_email = (
        await api.get(
            f"{A}/payments", headers=admin, params={"q": me["email"].upper(), "provider": "stripe"}
        )
    ).json()
    assert by_email["total"] == 2
    none = (
        await api.get(
            f"{A}/payments", headers=admin, params={"user_id": me["id"], "status": "completed"}
        )
    ).json()
    assert none["total"] == 0
    detail = await api.get(f"{A}/payments/{mine[0]}", headers=admin)
    assert detail.status_code == 200
    assert detail.json()["events"] == []
    for params in ({"status": "lost"}, {"provider": "paypal"}, {"user_id": "x"},
                   {"page_size": 500}, {"created_from": "yesterday"}):  # fmt: skip
        assert_error(await api.get(f"{A}/payments", headers=admin, params=params), 400, "40002")
    assert_error(await api.get(f"{A}/payments/nope", headers=admin), 404, "40404")


async def test_a_manual_credit_is_audited_and_reaches_the_live_balance(
    api: httpx.AsyncClient, developer: dict[str, Any], super_admin: Admin,
    db: asyncpg.Pool, redis: redis_asyncio.Redis,
) -> None:  # fmt: skip
    admin = super_admin.headers
    me = (await api.get("/api/v1/developers/me",
                        headers=bearer(developer["access_token"]))).json()  # fmt: skip
    shard = await shard_of(db, me["id"])
    who = Developer(me["id"], shard)
    await load_live_quota(db, redis, who)
    path = f"{A}/users/{me['id']}/quota-credits"
    response = await api.post(path, headers=admin, json={"units": 250, "reason": "outage"})
    assert response.status_code == 200, response.text
    assert response.json()["applied_to_gateway"] is True
    assert await live_quota(redis, who) == 100 + 250
    profile = (await api.get("/api/v1/developers/me",
                             headers=bearer(developer["access_token"]))).json()  # fmt: skip
    assert profile["quota"]["total"] == 250
    assert profile["quota"]["remaining"] == 350
    audit = (
        await api.get(
            f"{A}/audit-log",
            headers=admin,
            params={"target_id": me["id"], "action": "quota.credit"},
        )
    ).json()
    [entry] = audit["items"]
    assert entry["details"]["units"] == 250
    assert entry["details"]["reason"] == "outage"
    for body, status, code in [
        ({"units": 0, "reason": "x"}, 400, "40002"),
        ({"units": 10**8, "reason": "x"}, 400, "40002"),
        ({"units": 5}, 400, "40002"),
        ({"units": 5, "reason": ""}, 400, "40002"),
    ]:
        assert_error(await api.post(path, headers=admin, json=body), status, code)
    creator = await register(api, "creator")
    creator_me = (await api.get("/api/v1/creators/me",
                                headers=bearer(creator["access_token"]))).json()  # fmt: skip
    creator_id = creator_me.get("id") or creator_me.get("user_id")
    refused = await api.post(f"{A}/users/{creator_id}/quota-credits", headers=admin,
                             json={"units": 5, "reason": "x"})  # fmt: skip
    assert_error(refused, 400, "40001")
    unknown = await api.post(f"{A}/users/00000000-0000-4000-8000-000000000000/quota-credits",
                             headers=admin, json={"units": 5, "reason": "x"})  # fmt: skip
    assert_error(unknown, 404, "40402")


async def test_refund_refuses_what_cannot_be_refunded(
    api: httpx.AsyncClient, developer: dict[str, Any], super_admin: Admin
) -> None:
    admin = super_admin.headers
    pending = (await checkout(api, developer)).json()
    path = f"{A}/payments/{pending['id']}/refund"
    assert_error(await api.post(path, headers=admin, json={"reason": "asked"}), 409, "40901")
    assert_error(await api.post(path, headers=admin, json={}), 400, "40002")
    assert_error(
        await api.post(path, headers=admin, json={"reason": "x", "amount_usd": "-1"}), 400, "40002"
    )
    missing = f"{A}/payments/00000000-0000-4000-8000-000000000000/refund"
    assert_error(await api.post(missing, headers=admin, json={"reason": "x"}), 404, "40404")
    assert Decimal(pending["amount_usd"]) == Decimal("10.00")
