"""Payment intents and charges (made when a checkout is paid), and disputes opened on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_payments.stripe.wire import StripeError, new_id, now

if TYPE_CHECKING:
    from fake_payments.stripe.app import FakeStripe


def create_payment_intent(
    fake: FakeStripe, *, amount: int, currency: str, metadata: dict[str, Any], paid: bool
) -> dict[str, Any]:
    intent = fake.store.put({
        "id": new_id("pi"), "object": "payment_intent", "amount": amount,
        "amount_received": 0, "currency": currency, "created": now(), "latest_charge": None,
        "livemode": False, "metadata": dict(metadata), "status": "processing",
    })  # fmt: skip
    if paid:
        succeed(fake, intent)
    return intent


def succeed(fake: FakeStripe, intent: dict[str, Any]) -> dict[str, Any]:
    """The money arrived: the intent succeeds with a charge carrying the intent's metadata."""
    charge = fake.store.put({
        "id": new_id("ch"), "object": "charge", "amount": intent["amount"],
        "amount_captured": intent["amount"], "amount_refunded": 0,
        "currency": intent["currency"], "created": now(), "disputed": False,
        "livemode": False, "metadata": dict(intent["metadata"]), "paid": True,
        "payment_intent": intent["id"], "refunded": False, "status": "succeeded",
    })  # fmt: skip
    intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"])
    return charge


def charge_of(fake: FakeStripe, *, charge_id: str | None, intent_id: str | None) -> dict[str, Any]:
    if charge_id:
        return fake.store.get("charge", charge_id)
    if intent_id:
        intent = fake.store.get("payment_intent", intent_id)
        if intent["latest_charge"] is None:
            raise StripeError(400, "This PaymentIntent has no successful charge to refund.",
                              code="charge_not_refundable")  # fmt: skip
        return fake.store.get("charge", intent["latest_charge"])
    raise StripeError(400, "One of `charge` or `payment_intent` is required.",
                      code="parameter_missing")  # fmt: skip


def routes(fake: FakeStripe) -> list[Route]:
    async def retrieve_payment_intent(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return fake.store.get("payment_intent", request.path_params["intent_id"])

    async def retrieve_charge(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return fake.store.get("charge", request.path_params["charge_id"])

    async def open_dispute(request: Request) -> Response:
        """Control: the payer's bank disputes the charge (charge.dispute.created)."""
        try:
            charge = charge_of(fake, charge_id=request.path_params["charge_id"], intent_id=None)
        except StripeError as error:
            return error.response()
        dispute = fake.store.put({
            "id": new_id("dp"), "object": "dispute", "amount": charge["amount"],
            "charge": charge["id"], "currency": charge["currency"], "created": now(),
            "livemode": False, "metadata": {}, "payment_intent": charge["payment_intent"],
            "reason": "fraudulent", "status": "needs_response",
        })  # fmt: skip
        charge["disputed"] = True
        delivery = await fake.emit("charge.dispute.created", dispute)
        return JSONResponse({"dispute": dispute, "deliveries": [delivery]})

    return [
        Route("/v1/payment_intents/{intent_id}", fake.api(retrieve_payment_intent),
              methods=["GET"]),
        Route("/v1/charges/{charge_id}", fake.api(retrieve_charge), methods=["GET"]),
        Route("/_fake/charges/{charge_id}/dispute", open_dispute, methods=["POST"]),
    ]  # fmt: skip
