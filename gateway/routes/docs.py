"""GET /openapi.json: the gateway's API description (gateway/openapi.py), built once."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.openapi import build_openapi

_DOCUMENT = orjson.dumps(build_openapi())


async def openapi_json(request: Request) -> Response:
    return Response(_DOCUMENT, media_type="application/json")
