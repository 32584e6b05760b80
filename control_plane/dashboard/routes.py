"""The dashboard's route table: every page, from each area's own table.

Deny by default: a page needs a logged-in user unless its (method, path) is in
`PUBLIC_PAGES`, the one list of what anonymous visitors may open, like the API's
`PUBLIC_OPERATIONS`. Static files (/static) are public too: stylesheet and scripts only.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from control_plane.dashboard.pages import Page, build_page
from control_plane.dashboard.templating import STATIC_DIR
from control_plane.dashboard.views import (
    accounts,
    admin,
    analytics,
    creator,
    developer,
    earnings,
    knowledge,
    playground,
    public,
    webhooks,
)

PAGES: list[Page] = [
    *public.PAGES,
    *accounts.PAGES,
    *creator.PAGES,
    *analytics.PAGES,
    *knowledge.PAGES,
    *earnings.PAGES,
    *developer.PAGES,
    *webhooks.PAGES,
    *playground.PAGES,
    *admin.PAGES,
]

PUBLIC_PAGES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/"),
        ("GET", "/marketplace"),
        ("GET", "/marketplace/{agent_id}"),
        ("GET", "/pricing"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("GET", "/register"),
        ("POST", "/register"),
    }
)

ROUTES: list[BaseRoute] = [
    Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    *(build_page(page, page.operation in PUBLIC_PAGES) for page in PAGES),
]
