"""The control plane's route table: every operation, from each domain's own table.

Deny by default: every route requires a valid access token unless it is in
`PUBLIC_OPERATIONS`, the one list of what anonymous callers may do, which both the API
operations and the infrastructure routes (probes, metrics, the API description) are built
from.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute

from control_plane.admin import routes as admin
from control_plane.agents import routes as agents
from control_plane.analytics import routes as analytics
from control_plane.api import ApiRoute, PlainHandler, build_plain_route, build_route
from control_plane.auth import routes as auth
from control_plane.chain import routes as chain
from control_plane.creators import routes as creators
from control_plane.developers import routes as developers
from control_plane.earnings import routes as earnings
from control_plane.feature_flags import routes as feature_flags
from control_plane.knowledge import routes as knowledge
from control_plane.marketplace import routes as marketplace
from control_plane.openapi import build_openapi, docs_page
from control_plane.payments import routes as payments
from control_plane.reviews import routes as reviews
from control_plane.routes import health
from control_plane.toolbox import routes as toolbox
from control_plane.webhooks import routes as webhooks

API_ROUTES: list[ApiRoute] = [
    *auth.ROUTES,
    *creators.ROUTES,
    *agents.ROUTES,
    *developers.ROUTES,
    *toolbox.ROUTES,
    *marketplace.ROUTES,
    *reviews.ROUTES,
    *admin.ROUTES,
    *feature_flags.ROUTES,
    *payments.ROUTES,
    *knowledge.ROUTES,
    *earnings.ROUTES,
    *analytics.ROUTES,
    *webhooks.ROUTES,
    *chain.ROUTES,
]

PUBLIC_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/marketplace/agents"),
        ("GET", "/api/v2/marketplace/agents"),
        ("GET", "/api/v1/marketplace/agents/{agent_id}"),
        ("GET", "/api/v1/marketplace/categories"),
        ("GET", "/api/v1/marketplace/featured"),
        ("GET", "/api/v1/reviews/agents/{agent_id}"),
        ("GET", "/api/v1/payments/packages"),
        # On-chain proof: anyone may check what the chain says.
        ("GET", "/api/v1/agents/{agent_id}/ownership"),
        ("GET", "/api/v1/tokens/{token_id}"),
        # Authenticated by the provider's signature instead of a token.
        ("POST", "/api/v1/payments/webhook/stripe"),
        ("POST", "/api/v1/payments/webhook/coinbase"),
        # Infrastructure outside /api/v1: probes, metrics, the API description.
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
    }
)

OPENAPI = build_openapi(API_ROUTES, PUBLIC_OPERATIONS)
_DOCS = docs_page(OPENAPI)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(OPENAPI)


async def docs(request: Request) -> Response:
    return HTMLResponse(_DOCS)


# Plain Starlette handlers outside the API's machinery (no body, no schema).
INFRA_ROUTES: list[tuple[str, str, PlainHandler]] = [
    ("GET", "/healthz", health.healthz),
    ("GET", "/readyz", health.readyz),
    ("GET", "/metrics", health.metrics),
    ("GET", "/openapi.json", openapi_json),
    ("GET", "/docs", docs),
]

ROUTES: list[BaseRoute] = [
    *(build_plain_route(method, path, handler, (method, path) in PUBLIC_OPERATIONS)
      for method, path, handler in INFRA_ROUTES),
    *(build_route(route, route.operation in PUBLIC_OPERATIONS) for route in API_ROUTES),
]  # fmt: skip
