"""Checkout Sessions: the API (create, retrieve, expire), the hosted page with its "Pay"
button, and control endpoints that settle a session the way a payer would.

Paying sends `payment_intent.succeeded` then `checkout.session.completed` (payment_status
`paid`). An asynchronous method (`{"async": true}` on complete) sends the completion with
payment_status `unpaid`, then `checkout.session.async_payment_succeeded` or `_failed` when
`/_fake/checkout/sessions/{id}/async_payment` says how it ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fake_payments.pages import checkout_page
from fake_payments.stripe import charges
from fake_payments.stripe.wire import StripeError, integer, new_id, now, text

if TYPE_CHECKING:
    from fake_payments.stripe.app import FakeStripe

KIND = "checkout.session"
SESSION_LIFETIME_S = 24 * 3600


def _line_items(params: dict[str, Any]) -> tuple[int, str, str]:
    """(amount_total, currency, description) of the line items."""
    items = params.get("line_items")
    if not isinstance(items, list) or not items:
        raise StripeError(400, "Missing required param: line_items.", code="parameter_missing",
                          param="line_items")  # fmt: skip
    total, currencies, names = 0, set(), []
    for index, item in enumerate(items):
        price = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(price, dict):
            raise StripeError(400, "Only line_items[][price_data] is supported by this fake.",
                              param=f"line_items[{index}][price_data]")  # fmt: skip
        amount = integer(price, "unit_amount", required=True) or 0
        quantity = integer(item, "quantity", required=True) or 0
        currency = text(price, "currency", required=True) or ""
        product = price.get("product_data")
        name = text(product, "name", required=True) if isinstance(product, dict) else None
        if amount < 0 or quantity < 1 or name is None:
            raise StripeError(400, "Invalid line item.", param=f"line_items[{index}]")
        total += amount * quantity
        currencies.add(currency.lower())
        names.append(name)
    if len(currencies) != 1:
        raise StripeError(400, "All line items must share one currency.", param="line_items")
    return total, currencies.pop(), ", ".join(names)


def _metadata(params: dict[str, Any], name: str) -> dict[str, str]:
    value = params.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, f"Invalid object: {name}", param=name)
    return {str(key): str(item) for key, item in value.items()}


class CheckoutSessions:
    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake

    def session(self, request: Request) -> dict[str, Any]:
        return self.fake.store.get(KIND, request.path_params["session_id"])

    async def create(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        mode = text(params, "mode", required=True)
        if mode != "payment":
            raise StripeError(400, "This fake supports mode=payment only.", param="mode")
        success_url = text(params, "success_url", required=True)
        total, currency, description = _line_items(params)
        intent_data = params.get("payment_intent_data")
        intent_metadata = (
            _metadata(intent_data, "metadata") if isinstance(intent_data, dict) else {}
        )
        session_id = new_id("cs")
        created = now()
        return self.fake.store.put({
            "id": session_id, "object": KIND, "amount_subtotal": total, "amount_total": total,
            "cancel_url": text(params, "cancel_url"),
            "client_reference_id": text(params, "client_reference_id"), "created": created,
            "currency": currency, "customer": None,
            "customer_email": text(params, "customer_email"),
            "expires_at": created + SESSION_LIFETIME_S, "livemode": False,
            "metadata": _metadata(params, "metadata"), "mode": mode, "payment_intent": None,
            "payment_status": "unpaid", "status": "open", "success_url": success_url,
            "url": f"{self.fake.config.public_url}/c/pay/{session_id}",
            # Not part of Stripe's session object: what the hosted page shows and the intent
            # will carry. Kept out of API answers below.
            "_description": description, "_intent_metadata": intent_metadata,
        })  # fmt: skip

    async def retrieve(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return self.session(request)

    async def expire_api(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        found = self.session(request)
        await self.expire(found)
        return found

    async def complete(self, found: dict[str, Any], *, asynchronous: bool) -> list[dict[str, Any]]:
        if found["status"] != "open":
            raise StripeError(400, f"This Checkout Session is {found['status']}.",
                              code="checkout_session_not_open")  # fmt: skip
        intent = charges.create_payment_intent(
            self.fake, amount=found["amount_total"], currency=found["currency"],
            metadata=found["_intent_metadata"], paid=not asynchronous,
        )  # fmt: skip
        found.update(status="complete", payment_intent=intent["id"],
                     payment_status="unpaid" if asynchronous else "paid")  # fmt: skip
        deliveries = []
        if not asynchronous:
            deliveries.append(await self.fake.emit("payment_intent.succeeded", intent))
        deliveries.append(await self.fake.emit("checkout.session.completed", public(found)))
        return deliveries

    async def expire(self, found: dict[str, Any]) -> list[dict[str, Any]]:
        if found["status"] != "open":
            raise StripeError(400, f"This Checkout Session is {found['status']}.",
                              code="checkout_session_not_open")  # fmt: skip
        found["status"] = "expired"
        return [await self.fake.emit("checkout.session.expired", public(found))]

    async def control(self, request: Request) -> Response:
        action = request.path_params["action"]
        raw = await request.body()
        options = orjson.loads(raw) if raw else {}
        try:
            found = self.session(request)
            if action == "complete":
                deliveries = await self.complete(found, asynchronous=bool(options.get("async")))
            elif action == "async_payment":
                deliveries = await self.settle_async(
                    found, succeeded=bool(options.get("succeeded"))
                )
            elif action == "expire":
                deliveries = await self.expire(found)
            else:
                raise StripeError(404, f"Unknown action {action!r}")
        except StripeError as error:
            return error.response()
        return JSONResponse({"session": public(found), "deliveries": deliveries})

    async def settle_async(self, found: dict[str, Any], *, succeeded: bool) -> list[dict[str, Any]]:
        intent = self.fake.store.get("payment_intent", found["payment_intent"] or "")
        if found["status"] != "complete" or found["payment_status"] != "unpaid":
            raise StripeError(400, "This Checkout Session is not awaiting an async payment.")
        if succeeded:
            charges.succeed(self.fake, intent)
            found["payment_status"] = "paid"
            return [await self.fake.emit("checkout.session.async_payment_succeeded", public(found))]
        intent["status"] = "requires_payment_method"
        return [await self.fake.emit("checkout.session.async_payment_failed", public(found))]

    async def hosted_page(self, request: Request) -> Response:
        try:
            found = self.session(request)
        except StripeError:
            return HTMLResponse("<h1>No such checkout</h1>", status_code=404)
        amount = f"${found['amount_total'] / 100:,.2f} {found['currency'].upper()}"
        is_open = found["status"] == "open"
        return HTMLResponse(checkout_page(
            provider="Stripe Checkout", color="#635bff", title=found["_description"],
            description=found.get("customer_email") or "", amount=amount,
            pay_action=f"/c/pay/{found['id']}" if is_open else None,
            cancel_url=found["cancel_url"], state=found["status"],
        ))  # fmt: skip

    async def pay(self, request: Request) -> Response:
        """The page's "Pay" button: pay, send the webhooks, go back to the merchant."""
        try:
            found = self.session(request)
            await self.complete(found, asynchronous=False)
        except StripeError as error:
            return HTMLResponse(f"<h1>{error.message}</h1>", status_code=error.status)
        target = found["success_url"].replace("{CHECKOUT_SESSION_ID}", found["id"])
        return RedirectResponse(target, status_code=303)

    def routes(self) -> list[Route]:
        fake = self.fake
        return [
            Route("/v1/checkout/sessions", public_api(fake, self.create), methods=["POST"]),
            Route("/v1/checkout/sessions/{session_id}", public_api(fake, self.retrieve),
                  methods=["GET"]),
            Route("/v1/checkout/sessions/{session_id}/expire", public_api(fake, self.expire_api),
                  methods=["POST"]),
            Route("/c/pay/{session_id}", self.hosted_page, methods=["GET"]),
            Route("/c/pay/{session_id}", self.pay, methods=["POST"]),
            Route("/_fake/checkout/sessions/{session_id}/{action}", self.control,
                  methods=["POST"]),
        ]  # fmt: skip


def routes(fake: FakeStripe) -> list[Route]:
    return CheckoutSessions(fake).routes()


def public(found: dict[str, Any]) -> dict[str, Any]:
    """The session as Stripe shows it (without the fake's own bookkeeping fields)."""
    return {key: value for key, value in found.items() if not key.startswith("_")}


def public_api(fake: FakeStripe, handler: Any) -> Any:
    async def wrapped(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return public(await handler(request, params))

    wrapped.__name__ = handler.__name__
    return fake.api(wrapped)
