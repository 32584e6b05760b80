"""Refunds: through the API (`POST /v1/refunds`, what AgentLink's admin refund calls) or by a
person in the "dashboard" (`POST /_fake/charges/{id}/refund`); either sends charge.refunded
with the charge's cumulative `amount_refunded`, as Stripe does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_payments.stripe.charges import charge_of
from fake_payments.stripe.wire import StripeError, integer, new_id, now, text

if TYPE_CHECKING:
    from fake_payments.stripe.app import FakeStripe


async def refund(
    fake: FakeStripe, charge: dict[str, Any], amount: int | None, reason: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    left = charge["amount"] - charge["amount_refunded"]
    if left <= 0:
        raise StripeError(400, f"Charge {charge['id']} has already been refunded.",
                          code="charge_already_refunded")  # fmt: skip
    amount = left if amount is None else amount
    if not 0 < amount <= left:
        raise StripeError(
            400, f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            code="amount_too_large", param="amount",
        )  # fmt: skip
    created = fake.store.put({
        "id": new_id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
        "created": now(), "currency": charge["currency"], "metadata": {},
        "payment_intent": charge["payment_intent"], "reason": reason, "status": "succeeded",
    })  # fmt: skip
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    delivery = await fake.emit("charge.refunded", charge)
    return created, delivery


def routes(fake: FakeStripe) -> list[Route]:
    async def create_refund(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        charge = charge_of(
            fake, charge_id=text(params, "charge"), intent_id=text(params, "payment_intent")
        )
        created, _ = await refund(fake, charge, integer(params, "amount"), text(params, "reason"))
        return created

    async def retrieve_refund(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return fake.store.get("refund", request.path_params["refund_id"])

    async def dashboard_refund(request: Request) -> Response:
        """Control: refund from the dashboard; JSON body `{"amount": cents}` for a part."""
        raw = await request.body()
        options = orjson.loads(raw) if raw else {}
        try:
            charge = charge_of(fake, charge_id=request.path_params["charge_id"], intent_id=None)
            created, delivery = await refund(fake, charge, options.get("amount"), None)
        except StripeError as error:
            return error.response()
        return JSONResponse({"refund": created, "deliveries": [delivery]})

    return [
        Route("/v1/refunds", fake.api(create_refund), methods=["POST"]),
        Route("/v1/refunds/{refund_id}", fake.api(retrieve_refund), methods=["GET"]),
        Route("/_fake/charges/{charge_id}/refund", dashboard_refund, methods=["POST"]),
    ]
