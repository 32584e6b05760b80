"""The machinery every control-plane route goes through: one `ApiRoute` per operation.

A domain's `routes.py` is a table of `ApiRoute(method, path, handler, ...)`. Each route
declares its request body type, response type and who may call it; the wrapper built here
does, in order: authentication (deny by default: only operations listed in
`control_plane.routes.PUBLIC_OPERATIONS` skip it), authorization (user type, admin
permission), body decoding and validation into the declared msgspec type (400 `40002` with
the failing field), the handler call, and response encoding. The same table feeds the
OpenAPI document (control_plane/openapi.py), so the docs cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.asgi import read_body
from common.errors import ApiError, ErrorCode
from common.validation import check_decoded
from control_plane.auth.principal import Permission, Principal, UserType
from control_plane.auth.tokens import authenticate
from control_plane.state import ControlPlaneState


class RequestView:
    """What an API handler's `Context` and a dashboard page's `PageContext` both read of
    their request."""

    __slots__ = ()
    request: Request

    @property
    def path(self) -> Mapping[str, Any]:
        return self.request.path_params

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query_params

    @property
    def client_ip(self) -> str | None:
        return self.request.client.host if self.request.client else None


@dataclass(frozen=True, slots=True)
class Context(RequestView):
    """What a handler gets besides its body."""

    state: ControlPlaneState
    request: Request
    principal: Principal | None  # None only on public operations

    @property
    def user(self) -> Principal:
        """The caller, on an authenticated operation."""
        assert self.principal is not None, "public operation has no caller"
        return self.principal


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    handler: Handler
    summary: str
    body: Any = None  # a msgspec type: a Struct, or a union of tagged Structs
    response: Any = None  # a msgspec-encodable type, for the OpenAPI document
    status: int = 200
    user_types: frozenset[UserType] = frozenset(UserType)
    permission: Permission | None = None
    tags: tuple[str, ...] = ()
    query: type | None = None  # a msgspec Struct describing query parameters
    sunset: str | None = None  # HTTP-date: the route is deprecated and ends then
    successor: str | None = None  # the route to use instead
    # Error statuses beyond what the route's shape implies (control_plane/openapi.py's
    # error_statuses), e.g. 409 for a conflict, 429 for a throttle: the OpenAPI document
    # lists exactly these, and schemathesis checks no other is answered.
    errors: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def operation(self) -> tuple[str, str]:
        return (self.method, self.path)


@dataclass(frozen=True)
class RouteGroup:
    """Routes under one path prefix that the same user types may call, under one tag."""

    prefix: str
    user_types: frozenset[UserType]
    tag: str

    def route(
        self, method: str, path: str, handler: Handler, summary: str, **options: Any
    ) -> ApiRoute:
        return ApiRoute(
            method, self.prefix + path, handler, summary,
            user_types=self.user_types, tags=(self.tag,), **options,
        )  # fmt: skip


def _decode_error(error: msgspec.ValidationError | msgspec.DecodeError) -> ApiError:
    text = str(error)
    field_name = "body"
    if " - at `$" in text:
        text, _, where = text.partition(" - at `$")
        field_name = where.rstrip("`").lstrip(".") or "body"
    if isinstance(error, msgspec.ValidationError):
        return ApiError(
            ErrorCode.VALIDATION_FAILED,
            "The request failed validation.",
            details=[{"field": field_name, "message": text}],
        )
    return ApiError(ErrorCode.INVALID_REQUEST, "The request body is not valid JSON.")


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    return value


def decode(raw: bytes | str, kind: Any) -> Any:
    """The body as `kind`, every value of it storable (common.validation.check_decoded).
    An integer may be written `5.0`: JSON (and JSON Schema, so the OpenAPI document) counts
    it as the integer 5, which msgspec's strict decoding refuses; such bodies are decoded
    again with integral numbers as integers (and still no string coerced to a number)."""
    try:
        try:
            value = msgspec.json.decode(raw, type=kind)
        except msgspec.ValidationError as error:
            if "got `float`" not in str(error):
                raise
            value = msgspec.convert(_integral_floats_as_ints(msgspec.json.decode(raw)), kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise _decode_error(error) from None
    except UnicodeDecodeError:
        raise ApiError(ErrorCode.INVALID_REQUEST, "The request body is not valid UTF-8.") from None
    check_decoded(value)
    return value


def decode_query(query: Mapping[str, str], kind: type[Any]) -> Any:
    try:
        value = msgspec.convert(dict(query), type=kind, strict=False)
    except msgspec.ValidationError as error:
        raise _decode_error(error) from None
    check_decoded(value, "query")
    return value


def _check_path(path_params: Mapping[str, Any]) -> None:
    for name, value in path_params.items():
        check_decoded(value, name)


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        msgspec.json.encode(content), status_code=status, headers=headers,
        media_type="application/json",
    )  # fmt: skip


async def _caller(request: Request) -> Principal:
    state: ControlPlaneState = request.state.control
    return await authenticate(state, request.headers.get("authorization"))


PlainHandler = Callable[[Request], Awaitable[Response]]


def build_plain_route(method: str, path: str, handler: PlainHandler, public: bool) -> Route:
    """A plain Starlette handler behind the same deny-by-default check as an `ApiRoute`."""
    if public:
        return Route(path, handler, methods=[method])

    async def endpoint(request: Request) -> Response:
        await _caller(request)
        return await handler(request)

    endpoint.__name__ = handler.__name__
    return Route(path, endpoint, methods=[method])


def build_route(api: ApiRoute, public: bool) -> Route:
    async def endpoint(request: Request) -> Response:
        state: ControlPlaneState = request.state.control
        principal = None
        if not public:
            principal = await _caller(request)
            if principal.user_type not in api.user_types:
                raise ApiError(ErrorCode.FORBIDDEN)
            if api.permission is not None and not principal.can(api.permission):
                raise ApiError(ErrorCode.FORBIDDEN)
        _check_path(request.path_params)
        context = Context(state, request, principal)
        args: list[Any] = [context]
        if api.body is not None:
            raw = await read_body(request.scope, request.receive, state.settings.max_body_bytes)
            args.append(decode(raw or b"null", api.body))
        if api.query is not None:
            args.append(decode_query(request.query_params, api.query))
        result = await api.handler(*args)
        response = result if isinstance(result, Response) else json_response(result, api.status)
        if result is None and not isinstance(result, Response):
            response = Response(status_code=204)
        if api.sunset is not None:
            response.headers["Deprecation"] = "true"
            response.headers["Sunset"] = api.sunset
            if api.successor:
                response.headers["Link"] = f'<{api.successor}>; rel="successor-version"'
        return response

    endpoint.__name__ = api.handler.__name__
    return Route(api.path, endpoint, methods=[api.method])
