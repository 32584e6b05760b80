"""The routes both fakes share: health, what they were sent and sent back, the return page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fake_payments.pages import return_page
from fake_payments.recorder import Recorder


def routes(recorder: Recorder) -> list[Route]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def requests(request: Request) -> Response:
        """`GET`: the API requests received, oldest first (keys masked); `DELETE`: forget."""
        if request.method == "DELETE":
            recorder.clear()
            return Response(status_code=204)
        return JSONResponse(list(recorder.requests))

    async def deliveries(request: Request) -> Response:
        """Every webhook delivery attempt and the answer it got."""
        return JSONResponse(list(recorder.deliveries))

    async def landing(request: Request) -> Response:
        return HTMLResponse(return_page(request.path_params["outcome"]))

    return [
        Route("/health", health, methods=["GET"]),
        Route("/_fake/requests", requests, methods=["GET", "DELETE"]),
        Route("/_fake/deliveries", deliveries, methods=["GET"]),
        Route("/_fake/return/{outcome}", landing, methods=["GET"]),
    ]
