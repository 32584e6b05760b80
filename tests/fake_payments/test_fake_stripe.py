"""The fake Stripe speaks Stripe: the official `stripe` library accepts its answers and maps
its errors, it keeps what it was sent, and the events it sends verify with
`stripe.Webhook.construct_event`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import stripe

from fake_payments import FakeStripe
from tests.fake_payments.conftest import Receiver
from tests.processes import serve_fake_stripe

KEY = "sk_test_fake_stripe_tests"
SECRETS = ("whsec_new", "whsec_old")


@pytest.fixture(scope="module")
def fake(receiver: tuple[Receiver, str]) -> Iterator[tuple[FakeStripe, str]]:
    with serve_fake_stripe(SECRETS, api_key=KEY, webhook_url=receiver[1]) as served:
        yield served.fake, served.url


@pytest_asyncio.fixture
async def client(fake: tuple[FakeStripe, str]) -> AsyncIterator[stripe.StripeClient]:
    http = stripe.HTTPXClient()
    yield stripe.StripeClient(KEY, base_addresses={"api": fake[1]}, http_client=http,
                              max_network_retries=0)  # fmt: skip
    await http.close_async()  # type: ignore[no-untyped-call]


def session_params(**extra: Any) -> dict[str, Any]:
    return {
        "mode": "payment", "success_url": "https://shop.test/ok?s={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.test/no", "client_reference_id": "ref-1",
        "line_items": [{"quantity": 2, "price_data": {
            "currency": "usd", "unit_amount": 500, "product_data": {"name": "Calls"}}}],
        "metadata": {"payment_id": "p-1"}, "payment_intent_data": {"metadata": {"p": "1"}},
        **extra,
    }  # fmt: skip


pytestmark = pytest.mark.filterwarnings(
    # stripe's httpx adapter passes the form body as data=; the app uses its own subclass.
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)


async def test_the_stripe_library_creates_and_reads_sessions(
    client: stripe.StripeClient, fake: tuple[FakeStripe, str]
) -> None:
    session = await client.v1.checkout.sessions.create_async(session_params())  # type: ignore[arg-type]
    assert session.id.startswith("cs_test_")
    assert (session.amount_total, session.currency, session.status) == (1000, "usd", "open")
    assert session.url == f"{fake[1]}/c/pay/{session.id}"
    assert session.metadata is not None
    assert session.metadata.to_dict() == {"payment_id": "p-1"}
    again = await client.v1.checkout.sessions.retrieve_async(session.id)
    assert again.client_reference_id == "ref-1"
    expired = await client.v1.checkout.sessions.expire_async(session.id)
    assert expired.status == "expired"
    [sent] = [r for r in fake[0].recorder.requests
              if r["path"] == "/v1/checkout/sessions" and r["body"]["client_reference_id"]
              == "ref-1"][:1]  # fmt: skip
    assert sent["body"]["line_items"][0]["price_data"]["product_data"]["name"] == "Calls"
    assert KEY not in orjson.dumps(list(fake[0].recorder.requests)).decode()


async def test_errors_come_back_as_the_librarys_exceptions(
    client: stripe.StripeClient, fake: tuple[FakeStripe, str]
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.checkout.sessions.create_async({"mode": "payment", "success_url": "x"})
    assert missing.value.param == "line_items"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await client.v1.checkout.sessions.retrieve_async("cs_test_nope")
    assert unknown.value.code == "resource_missing"
    http = stripe.HTTPXClient()
    wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": fake[1]},
                                http_client=http, max_network_retries=0)  # fmt: skip
    try:
        with pytest.raises(stripe.AuthenticationError):
            await wrong.v1.checkout.sessions.create_async(session_params())  # type: ignore[arg-type]
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]


async def test_idempotency_keys_replay_and_refuse_other_parameters(
    client: stripe.StripeClient,
) -> None:
    options: Any = {"idempotency_key": "same-key-1"}
    first = await client.v1.checkout.sessions.create_async(session_params(), options)  # type: ignore[arg-type]
    second = await client.v1.checkout.sessions.create_async(session_params(), options)  # type: ignore[arg-type]
    assert first.id == second.id
    with pytest.raises(stripe.IdempotencyError):
        await client.v1.checkout.sessions.create_async(
            session_params(client_reference_id="other"),
            options,  # type: ignore[arg-type]
        )


async def test_paying_on_the_hosted_page_sends_signed_events_and_redirects(
    client: stripe.StripeClient, fake: tuple[FakeStripe, str], receiver: tuple[Receiver, str]
) -> None:
    session = await client.v1.checkout.sessions.create_async(session_params())  # type: ignore[arg-type]
    assert session.url is not None
    async with httpx.AsyncClient() as browser:
        page = await browser.get(session.url)
        assert 'id="pay"' in page.text
        assert "$10.00 USD" in page.text
        paid = await browser.post(session.url)
        assert paid.status_code == 303
        assert paid.headers["location"] == f"https://shop.test/ok?s={session.id}"
        again = await browser.post(session.url)
        assert again.status_code == 400
    hooks = receiver[0].received[-2:]
    events = []
    for hook in hooks:
        header = hook["headers"]["stripe-signature"]
        assert header.count("v1=") == 2  # one per secret while rotating
        for secret in SECRETS:  # the real library verifies it with either secret
            events.append(stripe.Webhook.construct_event(hook["body"], header, secret))
    assert [event.type for event in events[::2]] == [
        "payment_intent.succeeded", "checkout.session.completed",
    ]  # fmt: skip
    completed = orjson.loads(hooks[1]["body"])["data"]["object"]
    assert (completed["payment_status"], completed["status"]) == ("paid", "complete")
    intent = await client.v1.payment_intents.retrieve_async(completed["payment_intent"])
    assert intent.metadata.to_dict() == {"p": "1"}
    assert intent.status == "succeeded"
    charge = await client.v1.charges.retrieve_async(str(intent.latest_charge))
    assert (charge.amount, charge.metadata.to_dict()) == (1000, {"p": "1"})


async def test_refunds_are_cumulative_and_bounded(
    client: stripe.StripeClient, fake: tuple[FakeStripe, str], receiver: tuple[Receiver, str]
) -> None:
    session = await client.v1.checkout.sessions.create_async(session_params())  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=fake[1]) as control:
        done = await control.post(f"/_fake/checkout/sessions/{session.id}/complete")
        assert done.status_code == 200
        intent_id = done.json()["session"]["payment_intent"]
        part = await client.v1.refunds.create_async({"payment_intent": intent_id, "amount": 300})
        assert (part.amount, part.status) == (300, "succeeded")
        refunded = orjson.loads(receiver[0].received[-1]["body"])
        assert refunded["type"] == "charge.refunded"
        assert refunded["data"]["object"]["amount_refunded"] == 300
        with pytest.raises(stripe.InvalidRequestError) as too_much:
            await client.v1.refunds.create_async({"payment_intent": intent_id, "amount": 800})
        assert too_much.value.code == "amount_too_large"
        charge_id = refunded["data"]["object"]["id"]
        rest = await control.post(f"/_fake/charges/{charge_id}/refund")
        assert rest.json()["refund"]["amount"] == 700
        last = orjson.loads(receiver[0].received[-1]["body"])["data"]["object"]
        assert (last["amount_refunded"], last["refunded"]) == (1000, True)
        dispute = await control.post(f"/_fake/charges/{charge_id}/dispute")
        assert dispute.json()["dispute"]["payment_intent"] == intent_id
        resend = await control.post(f"/_fake/events/{refunded['id']}/resend")
        assert resend.json()["status"] == 200
    assert orjson.loads(receiver[0].received[-1]["body"])["id"] == refunded["id"]


async def test_an_async_payment_completes_unpaid_then_succeeds_or_fails(
    client: stripe.StripeClient, fake: tuple[FakeStripe, str]
) -> None:
    async with httpx.AsyncClient(base_url=fake[1]) as control:
        for succeeded, expected in ((True, "async_payment_succeeded"),
                                    (False, "async_payment_failed")):  # fmt: skip
            session = await client.v1.checkout.sessions.create_async(session_params())  # type: ignore[arg-type]
            base = f"/_fake/checkout/sessions/{session.id}"
            first = (await control.post(f"{base}/complete", json={"async": True})).json()
            assert first["session"]["payment_status"] == "unpaid"
            assert [d["type"] for d in first["deliveries"]] == ["checkout.session.completed"]
            settled = (await control.post(f"{base}/async_payment",
                                          json={"succeeded": succeeded})).json()  # fmt: skip
            assert settled["deliveries"][0]["type"] == f"checkout.session.{expected}"
