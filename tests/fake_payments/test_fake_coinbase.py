"""The fake Coinbase Commerce: charges in Commerce's wire format, its API-key check, the
hosted page, and webhooks signed with X-CC-Webhook-Signature."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from fake_payments import FakeCoinbase
from tests.fake_payments.conftest import Receiver
from tests.processes import serve_fake_coinbase

KEY = "cb-key-for-fake-tests"
SECRET = "cb-secret-for-fake-tests"


@pytest.fixture(scope="module")
def fake(receiver: tuple[Receiver, str]) -> Iterator[tuple[FakeCoinbase, str]]:
    with serve_fake_coinbase((SECRET,), api_key=KEY, webhook_url=receiver[1]) as served:
        yield served.fake, served.url


def charge_body(**extra: Any) -> dict[str, Any]:
    return {"name": "AgentLink Starter", "description": "1,000 calls",
            "pricing_type": "fixed_price", "local_price": {"amount": "10.00", "currency": "USD"},
            "metadata": {"payment_id": "p-1"}, "redirect_url": "https://shop.test/ok",
            "cancel_url": "https://shop.test/no", **extra}  # fmt: skip


def api(url: str, key: str = KEY) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-CC-Api-Key": key, "X-CC-Version": "2018-03-22"})


def test_charges_are_created_and_read_in_commerce_format(fake: tuple[FakeCoinbase, str]) -> None:
    with api(fake[1]) as client:
        created = client.post("/charges", json=charge_body())
        assert created.status_code == 201
        charge = created.json()["data"]
        assert charge["pricing"]["local"] == {"amount": "10.00", "currency": "USD"}
        assert charge["hosted_url"] == f"{fake[1]}/pay/{charge['code']}"
        assert charge["timeline"][-1]["status"] == "NEW"
        for name in (charge["code"], charge["id"]):
            assert client.get(f"/charges/{name}").json()["data"]["id"] == charge["id"]
        assert client.get("/charges/NOPE").status_code == 404
        bad = client.post("/charges", json=charge_body(local_price={"amount": "x"}))
        assert (bad.status_code, bad.json()["error"]["type"]) == (400, "invalid_request")
    with api(fake[1], key="wrong") as client:
        refused = client.post("/charges", json=charge_body())
        assert (refused.status_code, refused.json()["error"]["type"]) == (
            401, "authorization_error",
        )  # fmt: skip


def test_paying_sends_pending_then_confirmed_signed_with_the_shared_secret(
    fake: tuple[FakeCoinbase, str], receiver: tuple[Receiver, str]
) -> None:
    with api(fake[1]) as client:
        charge = client.post("/charges", json=charge_body()).json()["data"]
    with httpx.Client() as browser:
        page = browser.get(charge["hosted_url"])
        assert 'id="pay"' in page.text
        paid = browser.post(charge["hosted_url"])
    assert (paid.status_code, paid.headers["location"]) == (303, "https://shop.test/ok")
    hooks = receiver[0].received[-2:]
    types = []
    for hook in hooks:
        expected = hmac.new(SECRET.encode(), hook["body"], hashlib.sha256).hexdigest()
        assert hook["headers"]["x-cc-webhook-signature"] == expected
        event = orjson.loads(hook["body"])["event"]
        assert event["data"]["metadata"] == {"payment_id": "p-1"}
        types.append(event["type"])
    assert types == ["charge:pending", "charge:confirmed"]


def test_a_failed_charge_can_be_resolved_but_not_failed_twice(
    fake: tuple[FakeCoinbase, str], receiver: tuple[Receiver, str]
) -> None:
    with api(fake[1]) as client:
        code = client.post("/charges", json=charge_body()).json()["data"]["code"]
    with httpx.Client(base_url=fake[1]) as control:
        assert control.post(f"/_fake/charges/{code}/resolve").status_code == 400
        failed = control.post(f"/_fake/charges/{code}/fail").json()
        assert [d["type"] for d in failed["deliveries"]] == ["charge:failed"]
        assert control.post(f"/_fake/charges/{code}/fail").status_code == 400
        resolved = control.post(f"/_fake/charges/{code}/resolve").json()
        assert resolved["charge"]["timeline"][-1]["status"] == "RESOLVED"
        event_id = orjson.loads(receiver[0].received[-1]["body"])["event"]["id"]
        again = control.post(f"/_fake/events/{event_id}/resend").json()
        assert again["status"] == 200
    assert orjson.loads(receiver[0].received[-1]["body"])["attempt_number"] == 2
