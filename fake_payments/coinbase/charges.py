"""Charges: `POST /charges`, `GET /charges/{code_or_id}`, the hosted page at `/pay/{code}`,
and control endpoints: `confirm` (charge:pending then charge:confirmed, as when the
transaction is seen and then confirmed on chain), `fail` (charge:failed, e.g. expired
unpaid), `resolve` (charge:resolved: the merchant accepted an underpayment)."""

from __future__ import annotations

import secrets
import string
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fake_payments.coinbase.events import timestamp
from fake_payments.pages import checkout_page

if TYPE_CHECKING:
    from fake_payments.coinbase.app import FakeCoinbase

_CODE_ALPHABET = string.ascii_uppercase + string.digits
_TRANSITIONS = {  # control action -> (allowed from, timeline statuses, events)
    "confirm": ({"NEW", "EXPIRED", "UNRESOLVED"}, ["PENDING", "COMPLETED"],
                ["charge:pending", "charge:confirmed"]),
    "fail": ({"NEW", "PENDING"}, ["EXPIRED"], ["charge:failed"]),
    "resolve": ({"EXPIRED", "UNRESOLVED"}, ["RESOLVED"], ["charge:resolved"]),
}  # fmt: skip


class CoinbaseError(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, error_type, message

    def response(self) -> Response:
        body = {"error": {"type": self.type, "message": self.message}}
        return Response(orjson.dumps(body), self.status, media_type="application/json")


def _price(body: dict[str, Any]) -> tuple[str, str]:
    local = body.get("local_price")
    if body.get("pricing_type") != "fixed_price" or not isinstance(local, dict):
        raise CoinbaseError(400, "invalid_request", "pricing_type fixed_price and local_price "
                            "{amount, currency} are required")  # fmt: skip
    try:
        amount = Decimal(str(local.get("amount")))
    except InvalidOperation:
        raise CoinbaseError(400, "invalid_request", "local_price.amount is invalid") from None
    currency = local.get("currency")
    if not amount.is_finite() or amount <= 0 or not isinstance(currency, str):
        raise CoinbaseError(400, "invalid_request", "local_price is invalid")
    return f"{amount:.2f}", currency.upper()


class Charges:
    def __init__(self, fake: FakeCoinbase) -> None:
        self.fake = fake

    def find(self, code_or_id: str) -> dict[str, Any]:
        found = self.fake.charges.get(code_or_id) or next(
            (c for c in self.fake.charges.values() if c["id"] == code_or_id), None
        )
        if found is None:
            raise CoinbaseError(404, "not_found", "Not found")
        return found

    async def create(self, request: Request) -> Response:
        try:
            self.fake.authenticate(request)
            body = orjson.loads(await request.body() or b"null")
            self.fake.recorder.record_request("POST", "/charges", dict(request.headers), body)
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                raise CoinbaseError(400, "invalid_request", "name is required")
            amount, currency = _price(body)
        except orjson.JSONDecodeError:
            return CoinbaseError(400, "invalid_request", "body is not JSON").response()
        except CoinbaseError as error:
            return error.response()
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
        created = datetime.now(UTC)
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        charge = {
            "id": str(uuid.uuid4()), "resource": "charge", "code": code,
            "name": body["name"], "description": str(body.get("description") or ""),
            "hosted_url": f"{self.fake.config.public_url}/pay/{code}",
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires_at": (created + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timeline": [{"time": timestamp(), "status": "NEW"}],
            "metadata": metadata, "pricing_type": "fixed_price",
            "pricing": {"local": {"amount": amount, "currency": currency}},
            "payments": [], "addresses": {"ethereum": "0x" + secrets.token_hex(20)},
            "redirect_url": body.get("redirect_url"), "cancel_url": body.get("cancel_url"),
        }  # fmt: skip
        self.fake.charges[code] = charge
        return JSONResponse({"data": charge}, status_code=201)

    async def retrieve(self, request: Request) -> Response:
        try:
            self.fake.authenticate(request)
            self.fake.recorder.record_request("GET", request.url.path, dict(request.headers), None)
            return JSONResponse({"data": self.find(request.path_params["code"])})
        except CoinbaseError as error:
            return error.response()

    async def settle(self, charge: dict[str, Any], action: str) -> list[dict[str, Any]]:
        allowed, statuses, event_types = _TRANSITIONS[action]
        status = charge["timeline"][-1]["status"]
        if status not in allowed:
            raise CoinbaseError(400, "invalid_request", f"cannot {action} a {status} charge")
        if action == "confirm":
            local = charge["pricing"]["local"]
            charge["payments"].append({
                "network": "ethereum", "transaction_id": "0x" + secrets.token_hex(32),
                "status": "CONFIRMED", "value": {"local": dict(local)},
            })  # fmt: skip
            charge["confirmed_at"] = timestamp()
        deliveries = []
        for timeline_status, event_type in zip(statuses, event_types, strict=True):
            charge["timeline"].append({"time": timestamp(), "status": timeline_status})
            deliveries.append(await self.fake.emit(event_type, charge))
        return deliveries

    async def control(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in _TRANSITIONS:
            return CoinbaseError(404, "not_found", f"unknown action {action!r}").response()
        try:
            charge = self.find(request.path_params["code"])
            deliveries = await self.settle(charge, action)
        except CoinbaseError as error:
            return error.response()
        return JSONResponse({"charge": charge, "deliveries": deliveries})

    async def hosted_page(self, request: Request) -> Response:
        try:
            charge = self.find(request.path_params["code"])
        except CoinbaseError:
            return HTMLResponse("<h1>No such charge</h1>", status_code=404)
        local = charge["pricing"]["local"]
        status = charge["timeline"][-1]["status"]
        return HTMLResponse(checkout_page(
            provider="Coinbase Commerce", color="#0052ff", title=charge["name"],
            description=charge["description"], amount=f"{local['amount']} {local['currency']}",
            pay_action=f"/pay/{charge['code']}" if status == "NEW" else None,
            cancel_url=charge.get("cancel_url"), state=status.lower(),
        ))  # fmt: skip

    async def pay(self, request: Request) -> Response:
        try:
            charge = self.find(request.path_params["code"])
            await self.settle(charge, "confirm")
        except CoinbaseError as error:
            return HTMLResponse(f"<h1>{error.message}</h1>", status_code=error.status)
        return RedirectResponse(charge.get("redirect_url") or "/", status_code=303)

    def routes(self) -> list[Route]:
        return [
            Route("/charges", self.create, methods=["POST"]),
            Route("/charges/{code}", self.retrieve, methods=["GET"]),
            Route("/pay/{code}", self.hosted_page, methods=["GET"]),
            Route("/pay/{code}", self.pay, methods=["POST"]),
            Route("/_fake/charges/{code}/{action}", self.control, methods=["POST"]),
        ]
