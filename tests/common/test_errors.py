"""The error envelope and request ids (seed properties 33 and 34)."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common.asgi import EnvelopeMiddleware, read_body, request_id_from_headers
from common.errors import HTTP_STATUS, ApiError, ErrorCode, error_body
from common.http_errors import envelope_exception_handlers


def test_every_code_maps_to_the_status_its_prefix_names() -> None:
    for code in ErrorCode:
        assert HTTP_STATUS[code] == int(code.value[:3])
        assert 400 <= HTTP_STATUS[code] < 600


@given(st.sampled_from(list(ErrorCode)), st.text(max_size=50), st.uuids())
def test_error_body_is_the_documented_envelope(
    code: ErrorCode, message: str, rid: uuid.UUID
) -> None:
    body = orjson.loads(error_body(code, message or None, str(rid), details={"field": "x"}))
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == str(rid)
    assert body["error"]["code"] == code.value
    assert body["error"]["message"]
    assert body["error"]["details"] == {"field": "x"}


@given(st.binary(max_size=200))
def test_insane_client_request_ids_are_replaced_with_a_uuid(raw: bytes) -> None:
    request_id = request_id_from_headers([(b"x-request-id", raw)])
    if (
        raw
        and len(raw) <= 128
        and all(chr(b) in "._:-" or (chr(b).isalnum() and b < 128) for b in raw)
    ):
        assert request_id == raw.decode()
    else:
        assert uuid.UUID(request_id)


async def _ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _api_error(request: Request) -> Response:
    raise ApiError(ErrorCode.RATE_LIMITED, headers={"Retry-After": "7"})


async def _crash(request: Request) -> Response:
    raise RuntimeError("secret-internal-detail")


async def _echo_body(request: Request) -> Response:
    body = await read_body(request.scope, request.receive, limit=16)
    return Response(body)


def _app() -> Starlette:
    # As both apps are built: the envelope inside Starlette's own outermost error middleware.
    return Starlette(
        routes=[
            Route("/ok", _ok),
            Route("/limited", _api_error),
            Route("/crash", _crash),
            Route("/echo", _echo_body, methods=["POST"]),
        ],
        middleware=[Middleware(EnvelopeMiddleware)],
        exception_handlers=envelope_exception_handlers(),
    )


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_success_carries_the_clients_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/ok", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123"


async def test_api_error_becomes_envelope_with_status_and_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    body = response.json()
    assert body["error"]["code"] == "42902"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_unexpected_error_is_a_bare_500_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/crash", headers={"X-Request-ID": "r-1"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "50001", "message": "Internal error."},
        "request_id": "r-1",
    }
    assert "secret-internal-detail" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/nowhere", 404, "40403"), ("DELETE", "/ok", 405, "40501")],
)
async def test_router_errors_use_the_envelope(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert uuid.UUID(response.json()["request_id"])


async def test_body_limit_refuses_large_bodies_with_413(client: httpx.AsyncClient) -> None:
    assert (await client.post("/echo", content=b"x" * 16)).content == b"x" * 16
    response = await client.post("/echo", content=b"x" * 17)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "41301"


async def test_body_limit_holds_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b"xxxxx"

    response = await client.post("/echo", content=chunks())
    assert response.status_code == 413


async def test_an_unexpected_error_is_logged_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="agentlink.errors"):
        await client.get("/crash", headers={"X-Request-ID": "r-2"})
    logged = [record for record in caplog.records if record.getMessage() == "unhandled error"]
    assert len(logged) == 1
    assert logged[0].request_id == "r-2"  # type: ignore[attr-defined]


async def test_a_wrong_method_keeps_starlettes_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.delete("/ok")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
