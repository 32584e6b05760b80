"""Stripe Connect, as AgentLink's payouts use it: Express accounts for creators, onboarding
links, and transfers from the platform balance to a connected account.

API: `POST /v1/accounts`, `GET /v1/accounts/{id}`, `POST /v1/account_links`,
`POST /v1/transfers`, `GET /v1/transfers/{id}`, `GET /v1/transfers?transfer_group=...`.
A new account cannot receive transfers until onboarding is done (Stripe answers
`insufficient_capabilities_for_transfer`); the onboarding page's "complete" control does it.

Controls (tests and the local stack): `POST /_fake/connect/accounts/{id}/onboard` finishes an
account's onboarding; `POST /_fake/connect/accounts/{id}/restrict` takes its transfers
capability away; `POST /_fake/connect/balance {"available": cents}` sets the platform balance
(transfers beyond it fail with `balance_insufficient`); `POST /_fake/connect/hang
{"count": n, "seconds": s}` makes the next n transfers take effect and then answer only after s
seconds (a client timing out meanwhile has paid without knowing it). Idempotency keys work as
for every fake endpoint: the key's answer is stored before the delay, so a retry gets the same
transfer, never a second one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_payments.stripe.wire import StripeError, integer, new_id, now, text

if TYPE_CHECKING:
    from fake_payments.stripe.app import FakeStripe


class ConnectState:
    def __init__(self) -> None:
        self.available: int | None = None  # platform balance in cents; None: unlimited
        self.hang_count = 0
        self.hang_seconds = 0.0


def _account(fake: FakeStripe, account_id: str | None) -> dict[str, Any]:
    if not account_id:
        raise StripeError(400, "Missing required param: destination.", param="destination")
    found = fake.store.find("account", account_id)
    if found is None:
        raise StripeError(400, f"No such destination: '{account_id}'", code="resource_missing",
                          param="destination")  # fmt: skip
    return found


def routes(fake: FakeStripe) -> list[Route]:
    state = ConnectState()
    fake.connect = state  # type: ignore[attr-defined]  # for tests to inspect and steer

    async def create_account(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        kind = text(params, "type") or "express"
        if kind not in ("express", "standard", "custom"):
            raise StripeError(400, f"Invalid type: {kind}", param="type")
        return fake.store.put({
            "id": new_id("acct"), "object": "account", "type": kind,
            "country": text(params, "country") or "US", "email": text(params, "email"),
            "created": now(), "metadata": params.get("metadata") or {},
            "details_submitted": False, "charges_enabled": False, "payouts_enabled": False,
            "capabilities": {"transfers": "inactive"},
        })  # fmt: skip

    async def retrieve_account(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return fake.store.get("account", request.path_params["account_id"])

    async def create_account_link(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        account = fake.store.get("account", text(params, "account", required=True) or "")
        for name in ("refresh_url", "return_url"):
            text(params, name, required=True)
        base = str(request.base_url).rstrip("/")
        return {
            "object": "account_link", "created": now(), "expires_at": now() + 300,
            "url": f"{base}/_fake/connect/accounts/{account['id']}/onboard",
        }  # fmt: skip

    async def create_transfer(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        amount = integer(params, "amount", required=True) or 0
        if amount <= 0:
            raise StripeError(400, "Invalid positive integer", param="amount")
        currency = (text(params, "currency", required=True) or "").lower()
        account = _account(fake, text(params, "destination"))
        if account["capabilities"].get("transfers") != "active":
            raise StripeError(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer", param="destination",
            )  # fmt: skip
        if state.available is not None:
            if amount > state.available:
                raise StripeError(400, "You have insufficient available funds in your Stripe "
                                  "account.", code="balance_insufficient")  # fmt: skip
            state.available -= amount
        return fake.store.put({
            "id": new_id("tr"), "object": "transfer", "amount": amount, "currency": currency,
            "destination": account["id"], "transfer_group": text(params, "transfer_group"),
            "description": text(params, "description"), "metadata": params.get("metadata") or {},
            "created": now(), "reversed": False, "amount_reversed": 0,
        })  # fmt: skip

    async def retrieve_transfer(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return fake.store.get("transfer", request.path_params["transfer_id"])

    async def list_transfers(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        group, destination = params.get("transfer_group"), params.get("destination")
        found = [
            t for t in fake.store.all("transfer")
            if (group is None or t["transfer_group"] == group)
            and (destination is None or t["destination"] == destination)
        ]  # fmt: skip
        found.sort(key=lambda t: t["created"], reverse=True)
        return {"object": "list", "url": "/v1/transfers", "has_more": False, "data": found}

    create = fake.api(create_transfer)

    async def create_transfer_endpoint(request: Request) -> Response:
        response = await create(request)  # the idempotent answer is stored by now
        if state.hang_count > 0 and response.status_code == 200:
            state.hang_count -= 1
            await asyncio.sleep(state.hang_seconds)
        return response

    async def control(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        action = request.path_params.get("action")
        if action == "balance":
            state.available = body.get("available")
            return JSONResponse({"available": state.available})
        if action == "hang":
            state.hang_count = int(body.get("count", 1))
            state.hang_seconds = float(body.get("seconds", 5))
            return JSONResponse({"count": state.hang_count, "seconds": state.hang_seconds})
        return JSONResponse({"error": "unknown control"}, status_code=404)

    async def account_control(request: Request) -> Response:
        account = fake.store.find("account", request.path_params["account_id"])
        if account is None:
            return JSONResponse({"error": "no such account"}, status_code=404)
        if request.path_params["action"] == "onboard":
            account.update(details_submitted=True, charges_enabled=True, payouts_enabled=True,
                           capabilities={"transfers": "active"})  # fmt: skip
        else:
            account.update(payouts_enabled=False, capabilities={"transfers": "inactive"})
        return JSONResponse(account)

    return [
        Route("/v1/accounts", fake.api(create_account), methods=["POST"]),
        Route("/v1/accounts/{account_id}", fake.api(retrieve_account), methods=["GET"]),
        Route("/v1/account_links", fake.api(create_account_link), methods=["POST"]),
        Route("/v1/transfers", create_transfer_endpoint, methods=["POST"]),
        Route("/v1/transfers", fake.api(list_transfers), methods=["GET"]),
        Route("/v1/transfers/{transfer_id}", fake.api(retrieve_transfer), methods=["GET"]),
        Route("/_fake/connect/{action:str}", control, methods=["POST"]),
        Route(
            "/_fake/connect/accounts/{account_id}/{action:str}",
            account_control,
            methods=["GET", "POST"],
        ),
    ]
