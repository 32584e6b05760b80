"""DirectRoutes: the table's leading ASGI routes served past Starlette's layers, with the same
middleware; everything else answered by the Starlette app exactly as before."""

from __future__ import annotations

import httpx
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common.asgi import EnvelopeMiddleware, Receive, Scope, Send
from common.direct_routes import DirectRoutes, leading_asgi_routes
from common.errors import ApiError, ErrorCode
from common.http_errors import envelope_exception_handlers


class Echo:
    """A pure ASGI endpoint that says whether Starlette's app saw the request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path_params"]["item"] == "refused":
            raise ApiError(ErrorCode.RATE_LIMITED)
        body = orjson.dumps(
            {"item": scope["path_params"]["item"], "via_starlette": "app" in scope,
             "request_id": scope["state"]["request_id"]}
        )  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def _health(request: Request) -> Response:
    return JSONResponse({"via_starlette": "app" in request.scope})


ROUTES = [
    Route("/items/{item}", Echo(), methods=["POST"]),
    Route("/healthz", _health, methods=["GET"]),
    Route("/late/{item}", Echo(), methods=["POST"]),  # after a function route: Starlette's
]
MIDDLEWARE = [Middleware(EnvelopeMiddleware)]


def _client() -> httpx.AsyncClient:
    starlette = Starlette(
        routes=ROUTES, middleware=MIDDLEWARE, exception_handlers=envelope_exception_handlers()
    )
    app = DirectRoutes(starlette, ROUTES, MIDDLEWARE)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_only_the_leading_asgi_routes_are_taken() -> None:
    assert leading_asgi_routes(ROUTES) == ROUTES[:1]


async def test_a_leading_asgi_route_is_served_directly_with_the_middleware() -> None:
    async with _client() as client:
        answer = await client.post("/items/a1", headers={"x-request-id": "rid-1"})
        assert answer.status_code == 200
        assert answer.json() == {"item": "a1", "via_starlette": False, "request_id": "rid-1"}
        assert answer.headers["x-request-id"] == "rid-1"
        refused = await client.post("/items/refused")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == ErrorCode.RATE_LIMITED.value
        assert refused.headers["x-request-id"] == refused.json()["request_id"]


async def test_everything_else_is_the_starlette_apps() -> None:
    async with _client() as client:
        assert (await client.get("/healthz")).json() == {"via_starlette": True}
        assert (await client.post("/late/x")).json()["via_starlette"] is True
        wrong_method = await client.get("/items/a1")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["allow"] == "POST"
        assert wrong_method.json()["error"]["code"] == ErrorCode.METHOD_NOT_ALLOWED.value
        unknown = await client.post("/nowhere")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == ErrorCode.ROUTE_NOT_FOUND.value
