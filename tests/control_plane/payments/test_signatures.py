"""Webhook signatures exactly as each provider specifies them (property 14's "unsigned, badly
signed, replayed too late"): Stripe through `stripe.Webhook.construct_event`, Coinbase by
HMAC-SHA256 of the raw body. A delivery that fails verification is refused before anything is
parsed or stored."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from control_plane.payments.providers.base import Action, WebhookRejected
from control_plane.payments.services import PaymentServices
from fake_payments.stripe import events as stripe_events
from tests.control_plane.payments.support import (
    COINBASE_SECRETS,
    STRIPE_SECRETS,
    Payment,
    coinbase_event,
    signed_coinbase,
    signed_stripe,
    stripe_session_event,
)
from tests.factories import Developer

NOBODY = Developer("00000000-0000-4000-8000-000000000001", 1)
PAYMENT = Payment("6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5", NOBODY, "stripe", 1000,
                  Decimal("10.00"), "cs_test_sig", "pi_test_sig")  # fmt: skip


def flip_one_byte(body: bytes) -> bytes:
    index = body.index(b"10")  # inside "amount_total": 1000 / the price
    return body[:index] + b"9" + body[index + 1 :]


# -- Stripe -----------------------------------------------------------------------------------


def test_a_correctly_signed_stripe_event_verifies(services: PaymentServices) -> None:
    body, headers = signed_stripe(stripe_session_event(PAYMENT))
    event = services.provider("stripe").verify(body, headers)
    assert event.action is Action.CONFIRMED
    assert event.payment_id == PAYMENT.payment_id


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("wrong secret", "does not match"),
        ("stale timestamp", "does not match or is too old"),
        ("one byte changed", "does not match"),
        ("no header", "no Stripe-Signature"),
        ("garbage header", "does not match"),
        ("timestamp of another moment", "does not match"),
    ],
)
def test_stripe_signature_edge_cases_are_refused(
    services: PaymentServices, case: str, expect: str
) -> None:
    event = stripe_session_event(PAYMENT)
    body, headers = signed_stripe(event)
    if case == "wrong secret":
        body, headers = signed_stripe(event, secrets=("whsec_someone_else",))
    elif case == "stale timestamp":  # a captured delivery replayed after the 300 s tolerance
        body, headers = signed_stripe(event, timestamp=int(time.time()) - 301)
    elif case == "one byte changed":
        body = flip_one_byte(body)
    elif case == "no header":
        headers = {}
    elif case == "garbage header":
        headers = {"stripe-signature": "t=abc,v1=zz"}
    elif case == "timestamp of another moment":  # the signature is bound to its timestamp
        moment = int(time.time())
        _, signed_then = signed_stripe(event, timestamp=moment - 10)
        signature = signed_then["stripe-signature"].split(",", 1)[1]
        headers = {"stripe-signature": f"t={moment},{signature}"}
    with pytest.raises(WebhookRejected, match=expect):
        services.provider("stripe").verify(body, headers)


def test_a_stripe_event_just_inside_the_tolerance_verifies(services: PaymentServices) -> None:
    body, headers = signed_stripe(stripe_session_event(PAYMENT), timestamp=int(time.time()) - 290)
    assert services.provider("stripe").verify(body, headers).event_type == (
        "checkout.session.completed"
    )


def test_several_v1_signatures_during_stripe_secret_rotation(services: PaymentServices) -> None:
    """Stripe signs with every active secret while one is rolled; a header holding an
    unknown signature next to a good one verifies, and so does the old secret we still
    accept (STRIPE_WEBHOOK_SECRET lists both during our own rotation)."""
    event = stripe_session_event(PAYMENT)
    for secrets in [
        ("whsec_not_ours", STRIPE_SECRETS[0]),
        (STRIPE_SECRETS[0], "whsec_not_ours"),
        (STRIPE_SECRETS[1],),
        ("whsec_not_ours", STRIPE_SECRETS[1], "whsec_neither"),
    ]:
        body, headers = signed_stripe(event, secrets=secrets)
        assert headers["stripe-signature"].count("v1=") == len(secrets)
        assert services.provider("stripe").verify(body, headers).event_id == event["id"]
    body, headers = signed_stripe(event, secrets=("whsec_not_ours", "whsec_neither"))
    with pytest.raises(WebhookRejected):
        services.provider("stripe").verify(body, headers)


def test_a_signed_body_that_is_not_a_stripe_event_is_refused(services: PaymentServices) -> None:
    for body in [b"not json", b"[1, 2]", b'{"object": "event", "id": "evt_1"}', b"\xff\xfe"]:
        headers = {"stripe-signature": stripe_events.sign(body, STRIPE_SECRETS[:1])}
        with pytest.raises(WebhookRejected):
            services.provider("stripe").verify(body, headers)


# -- Coinbase ---------------------------------------------------------------------------------

COINBASE_PAYMENT = Payment(PAYMENT.payment_id, NOBODY, "coinbase", 1000, PAYMENT.amount,
                           "0e0d9d4c-1b2a-4c3d-9e8f-7a6b5c4d3e2f", "ABCD1234")  # fmt: skip


def test_a_correctly_signed_coinbase_event_verifies(services: PaymentServices) -> None:
    body, headers = signed_coinbase(coinbase_event(COINBASE_PAYMENT))
    event = services.provider("coinbase").verify(body, headers)
    assert event.action is Action.CONFIRMED
    assert (event.payment_id, event.provider_ref) == (PAYMENT.payment_id, "ABCD1234")


@pytest.mark.parametrize("case", ["wrong secret", "one byte changed", "no header", "not hex",
                                  "truncated", "empty"])  # fmt: skip
def test_coinbase_signature_edge_cases_are_refused(services: PaymentServices, case: str) -> None:
    body, headers = signed_coinbase(coinbase_event(COINBASE_PAYMENT))
    if case == "wrong secret":
        body, headers = signed_coinbase(coinbase_event(COINBASE_PAYMENT), secret="not-ours")
    elif case == "one byte changed":
        body = flip_one_byte(body)
    elif case == "no header":
        headers = {}
    elif case == "not hex":
        headers = {"x-cc-webhook-signature": "é" * 64}
    elif case == "truncated":
        headers = {"x-cc-webhook-signature": headers["x-cc-webhook-signature"][:-1]}
    elif case == "empty":
        headers = {"x-cc-webhook-signature": ""}
    with pytest.raises(WebhookRejected):
        services.provider("coinbase").verify(body, headers)


def test_coinbase_verifies_with_either_secret_while_rotating(services: PaymentServices) -> None:
    for secret in COINBASE_SECRETS:
        body, headers = signed_coinbase(coinbase_event(COINBASE_PAYMENT), secret=secret)
        assert services.provider("coinbase").verify(body, headers).provider == "coinbase"
    body, headers = signed_coinbase(coinbase_event(COINBASE_PAYMENT))
    upper = {"x-cc-webhook-signature": headers["x-cc-webhook-signature"].upper()}
    assert services.provider("coinbase").verify(body, upper).provider == "coinbase"
