"""One Starlette route per path, whatever the number of methods a route table gives it.

A route table lists operations (method, path, handler). Starlette's router stops at the first
route whose path matches, so with one `Route` per operation a wrong method on a path with two
operations answered 405 with an `Allow` header naming only the first one's method. `by_path`
merges the operations of each path into one route that knows all of its methods and hands each
request to its method's handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

RequestHandler = Callable[[Request], Awaitable[Response]]


def _dispatcher(handlers: dict[str, RequestHandler]) -> RequestHandler:
    async def endpoint(request: Request) -> Response:
        # Starlette's Route has already answered 405 for a method outside `handlers` (and
        # HEAD is in them exactly when GET is: it runs GET's handler, the server drops the body).
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def by_path(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """`routes` with the function-endpoint routes of one path merged, in first-seen order."""
    merged: list[BaseRoute] = []
    handlers_of: dict[str, dict[str, RequestHandler]] = {}
    for route in routes:
        if not isinstance(route, Route) or route.methods is None:
            merged.append(route)
            continue
        handlers = handlers_of.get(route.path)
        if handlers is None:
            handlers = handlers_of[route.path] = {}
            merged.append(route)
        for method in route.methods - {"HEAD"}:
            if method in handlers:
                raise ValueError(f"two handlers for {method} {route.path}")
            handlers[method] = route.endpoint
    return [_merged(route, handlers_of) for route in merged]


def _merged(route: BaseRoute, handlers_of: dict[str, dict[str, RequestHandler]]) -> BaseRoute:
    if not isinstance(route, Route) or len(handlers_of.get(route.path, {})) < 2:
        return route
    handlers = handlers_of[route.path]
    endpoint = _dispatcher(handlers)
    endpoint.__name__ = "_".join(handler.__name__ for handler in handlers.values())
    return Route(route.path, endpoint, methods=list(handlers))
