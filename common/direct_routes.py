"""The hot routes straight to their endpoint, past Starlette's own layers.

A Starlette app runs each request through ServerErrorMiddleware, the app's middleware list,
ExceptionMiddleware and its Router, the first two wrapping `send` once more each: on the
gateway's proxy route that was ~8% of a call's CPU (python -m loadtests.inproc), spent on
nothing its endpoints use (they are pure ASGI, take only `path_params` from the router, and
the envelope middleware answers their errors).

`DirectRoutes` stands in front of the Starlette app. The route table's leading routes whose
endpoint is a pure ASGI app are matched here, each by its own `Route.matches` (so paths,
converters and methods are Starlette's, in the table's order, and no other route can come
first), and a full match is served by the same middleware list around that endpoint. All
else goes to the Starlette app as before: lifespan, the other routes, an unknown path, a
wrong method (its 405 with Allow), a route behind a function endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match, Route

from common.asgi import ASGIApp, Receive, Scope, Send


def _with_middleware(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app


def leading_asgi_routes(routes: Sequence[BaseRoute]) -> list[Route]:
    """The routes a table starts with whose endpoint is itself the ASGI app (a class
    instance, no per-route middleware): the ones `DirectRoutes` may take."""
    leading: list[Route] = []
    for route in routes:
        if not isinstance(route, Route) or route.app is not route.endpoint:
            break
        leading.append(route)
    return leading


class DirectRoutes:
    def __init__(
        self, app: ASGIApp, routes: Sequence[BaseRoute], middleware: Sequence[Middleware]
    ) -> None:
        self.app = app  # the Starlette app: everything not served here
        self._routes = [
            (route, _with_middleware(route.app, middleware))
            for route in leading_asgi_routes(routes)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route, app in self._routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    await app(scope, receive, send)
                    return
                if match is Match.PARTIAL:
                    break  # a wrong method: Starlette finds the route that takes it, or 405
        await self.app(scope, receive, send)
