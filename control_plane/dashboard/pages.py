"""The machinery every dashboard page goes through: one `Page` per (method, path).

Like control_plane/api.py for the API: each view module's `PAGES` is a table of
`Page(method, path, handler, ...)`, and the wrapper built here does, in order:

1. the session: cookies → the caller (rotating the refresh token when the access token ran
   out; control_plane/dashboard/session.py);
2. CSRF, on every POST, before anything runs (control_plane/dashboard/csrf.py): first where
   the request came from, then (once the caller is known) the token;
3. authentication, deny by default: only pages in `control_plane.dashboard.routes.PUBLIC_PAGES`
   are open; any other page sends an anonymous visitor to /login (a `fetch()` endpoint answers
   401 in the error envelope instead) and runs nothing;
4. authorization: the user types the page is for, and the admin permission it needs;
5. the handler, which calls the control plane's own services: every rule the API enforces
   holds here too. An `ApiError` it lets escape becomes an error page with the same status
   and message;
6. cookies (session, CSRF, one-time notice) and security headers on the response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from common.asgi import ClientDisconnected, read_body, request_id_of
from common.errors import ApiError, ErrorCode, error_body
from common.validation import check_decoded, check_text
from control_plane.api import RequestView
from control_plane.auth.principal import Permission, Principal, UserType
from control_plane.dashboard import csrf
from control_plane.dashboard.session import Session, resolve, secure_cookies, write_cookies
from control_plane.dashboard.state import DashboardState
from control_plane.knowledge.uploads import Upload, read_form_with_uploads
from control_plane.state import ControlPlaneState

logger = logging.getLogger("agentlink.dashboard")

FORM_MAX_BYTES = 1_048_576
NOTICE_COOKIE = "al_notice"
ALL_USERS = frozenset(UserType)
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages show private data and one-time secrets (a new key): no cache keeps them.
    "Cache-Control": "no-store",
}
_AUDIENCE = {
    UserType.CREATOR: "creators",
    UserType.DEVELOPER: "developers",
    UserType.ADMIN: "administrators",
}


class Form:
    """A decoded form (or JSON object) body: `form["name"]` is "" when absent."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        # Browsers submit line breaks as CRLF; the services store what was typed: LF.
        pairs = [(name, value.replace("\r\n", "\n")) for name, value in pairs]
        for name, value in pairs:
            check_text(name, value)  # 400 for what Postgres cannot store
        self._pairs = pairs
        self._first: dict[str, str] = {}
        for name, value in pairs:
            self._first.setdefault(name, value)

    def __getitem__(self, name: str) -> str:
        return self._first.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._first

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]

    def as_dict(self) -> dict[str, str]:
        return dict(self._first)


@dataclass(slots=True)
class PageContext(RequestView):
    state: ControlPlaneState
    dash: DashboardState
    request: Request
    session: Session
    form: Form
    json: Any  # a JSON body, for fetch() endpoints; None otherwise
    notice: str | None
    uploads: list[Upload] = field(default_factory=list)  # files of a multipart page's form

    @property
    def user(self) -> Principal:
        """The caller, on a page that is not public."""
        assert self.session.principal is not None, "public page has no caller"
        return self.session.principal

    @property
    def csrf_token(self) -> str:
        principal = self.session.principal
        return csrf.token_for(
            self.dash.csrf_key,
            self.session.csrf_secret,
            principal.user_id if principal else None,
        )

    def render(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        context = {
            "user": self.session.principal,
            "csrf_token": self.csrf_token,
            "notice": self.notice,
            "path": self.request.url.path,
            "settings": self.dash.settings,
            **values,
        }
        html = self.dash.templates.get_template(template).render(context)
        response = HTMLResponse(html, status_code=status)
        if self.notice is not None:
            response.delete_cookie(NOTICE_COOKIE, path="/")
        return response

    def redirect(self, url: str, notice: str | None = None) -> Response:
        response = RedirectResponse(url, status_code=303)
        if notice is not None:
            response.set_cookie(
                NOTICE_COOKIE, _sign_notice(self.dash.csrf_key, notice), max_age=120,
                httponly=True, samesite="lax", path="/",
                secure=secure_cookies(self.dash.settings, self.request),
            )  # fmt: skip
        return response


Handler = Callable[[PageContext], Awaitable[Response]]


@dataclass(frozen=True)
class Page:
    method: str
    path: str
    handler: Handler
    users: frozenset[UserType] = ALL_USERS
    permission: Permission | None = None
    # A fetch() endpoint: errors answer in the JSON envelope, not as pages.
    api: bool = False
    # A form with files (multipart, the knowledge upload's limits): read only once the caller
    # is known, so an anonymous visitor never makes us spool an upload.
    multipart: bool = False

    @property
    def operation(self) -> tuple[str, str]:
        return (self.method, self.path)


def _sign_notice(key: bytes, text: str) -> str:
    encoded = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    mac = hmac.new(key, b"notice|" + encoded.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{encoded}.{mac}"


def _read_notice(key: bytes, cookie: str | None) -> str | None:
    if not cookie or "." not in cookie:
        return None
    encoded, mac = cookie.rsplit(".", 1)
    expected = hmac.new(key, b"notice|" + encoded.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()[:300]
    except ValueError:
        return None


def safe_next(raw: str | None, default: str = "/") -> str:
    """A post-login destination on this site only (no `//host`, no scheme)."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return default


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def _read_body(request: Request, page: Page) -> tuple[Form, Any]:
    """The form (or JSON body) of a page request; every value is storable (Form checks its
    pairs; a NUL byte or lone surrogate would make Postgres fail the request as a 500)."""
    form, data = await _read_unchecked_body(request, page)
    check_decoded(data)
    return form, data


async def _read_unchecked_body(request: Request, page: Page) -> tuple[Form, Any]:
    if request.method != "POST":
        return Form(list(request.query_params.multi_items())), None
    if page.multipart and _is_multipart(request):
        return Form([]), None  # read in _guarded, once the caller is known
    raw = await read_body(request.scope, request.receive, FORM_MAX_BYTES)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            return Form([]), orjson.loads(raw or b"null")
        except orjson.JSONDecodeError:
            raise ApiError(
                ErrorCode.INVALID_REQUEST, "The request body is not valid JSON."
            ) from None
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise ApiError(ErrorCode.INVALID_REQUEST, "Expected a form.")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(ErrorCode.INVALID_REQUEST, "The form could not be read.") from None
    return Form(pairs), None


def error_page(
    context: PageContext, status: int, title: str, message: str, *, api: bool
) -> Response:
    if api:
        code = next((c for c in ErrorCode if int(c.value[:3]) == status), ErrorCode.INTERNAL)
        body = error_body(code, message, request_id_of(context.request.scope))
        return Response(body, status_code=status, media_type="application/json")
    return context.render(
        "error.html", status=status, title=title, message=message,
        request_id=request_id_of(context.request.scope),
    )  # fmt: skip


def _api_error_response(context: PageContext, error: ApiError, *, api: bool) -> Response:
    if api:
        body = error_body(error.code, error.message, request_id_of(context.request.scope),
                          error.details)  # fmt: skip
        return Response(
            body, status_code=error.status, headers=error.headers, media_type="application/json"
        )
    titles = {400: "Check your input", 401: "Please log in", 403: "Not allowed",
              404: "Not found", 409: "Conflict", 429: "Slow down", 503: "Unavailable"}  # fmt: skip
    title = titles.get(error.status, "Something went wrong")
    response = error_page(context, error.status, title, error.message, api=False)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _refuse_anonymous(page: Page, context: PageContext) -> Response:
    """No session on a page that needs one: a refusal, so it may come before CSRF (nothing
    runs), and a suspended account learns why rather than "reload the page"."""
    session, request = context.session, context.request
    if page.api:
        message = (
            "Your account is suspended or closed."
            if session.inactive
            else "Your session has ended; log in again."
        )
        code = ErrorCode.FORBIDDEN if session.inactive else ErrorCode.INVALID_CREDENTIALS
        return _api_error_response(context, ApiError(code, message), api=True)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    flag = "&inactive=1" if session.inactive else ""
    return RedirectResponse(f"/login?next={quote(target, safe='')}{flag}", 303)


async def _guarded(page: Page, public: bool, context: PageContext) -> Response:
    request, session = context.request, context.session
    principal = session.principal
    posted = request.method == "POST"
    try:
        if posted:
            csrf.check_origin(request)
        if not public and principal is None:
            return _refuse_anonymous(page, context)
        if posted and page.multipart and _is_multipart(request):
            pairs, context.uploads = await read_form_with_uploads(
                request, context.state.settings.knowledge
            )
            context.form = Form(pairs)
        if posted:
            sent = context.form[csrf.FORM_FIELD] or request.headers.get(csrf.HEADER)
            csrf.check_token(
                context.dash.csrf_key,
                request.cookies.get(csrf.COOKIE),
                principal.user_id if principal else None,
                sent,
            )
    except csrf.CsrfRefused:
        message = (
            "This form could not be accepted: it did not come from this site, or the page was "
            "open too long. Reload the page and try again."
        )
        return error_page(context, 403, "Request refused", message, api=page.api)
    if principal is not None and not public:
        if principal.user_type not in page.users:
            names = " and ".join(_AUDIENCE[kind] for kind in UserType if kind in page.users)
            return error_page(
                context, 403, "Not for this account", f"This page is for {names}.", api=page.api
            )
        if page.permission is not None and not principal.can(page.permission):
            return error_page(
                context, 403, "Not allowed",
                "Your admin role does not include this.", api=page.api,
            )  # fmt: skip
    return await page.handler(context)


def build_page(page: Page, public: bool) -> Route:
    async def endpoint(request: Request) -> Response:
        state: ControlPlaneState = request.state.control
        dash: DashboardState = request.state.dashboard
        notice = _read_notice(dash.csrf_key, request.cookies.get(NOTICE_COOKIE))
        context = PageContext(state, dash, request, Session(), Form([]), None, notice)
        try:
            context.session = await resolve(state, dash.settings, request)
            context.form, context.json = await _read_body(request, page)
            response = await _guarded(page, public, context)
        except ApiError as error:
            response = _api_error_response(context, error, api=page.api)
        except ClientDisconnected:
            raise
        except Exception:
            logger.exception("page failed", extra={"request_id": request_id_of(request.scope)})
            response = error_page(
                context, 500, "Something went wrong",
                "An internal error stopped this page. It was logged; try again shortly.",
                api=page.api,
            )  # fmt: skip
        session = context.session
        write_cookies(
            session, response, secure=secure_cookies(dash.settings, request),
            refresh_ttl_s=state.settings.refresh_token_ttl_s,
        )  # fmt: skip
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    endpoint.__name__ = page.handler.__name__
    return Route(page.path, endpoint, methods=[page.method])
