"""Log in, register, log out (here or everywhere), the account page."""

from __future__ import annotations

from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.auth import service as auth
from control_plane.auth.schemas import LoginRequest, RegisterRequest, TokenPair
from control_plane.auth.tokens import decode_access_token
from control_plane.dashboard.forms import Errors, blank_to_none, convert, field_errors
from control_plane.dashboard.pages import Page, PageContext, safe_next
from control_plane.dashboard.session import log_out, log_out_everywhere
from control_plane.developers import session_keys

HOME = {UserType.CREATOR: "/creator", UserType.DEVELOPER: "/developer", UserType.ADMIN: "/admin"}


def _begin(ctx: PageContext, pair: TokenPair, default: str) -> Response:
    principal = decode_access_token(ctx.state.settings.jwt_secret, pair.access_token)
    ctx.session.start(pair, principal)
    return ctx.redirect(safe_next(ctx.form["next"] or None, HOME.get(principal.user_type, default)))


async def login_form(ctx: PageContext) -> Response:
    if ctx.session.principal is not None:
        return ctx.redirect(safe_next(ctx.query.get("next"), HOME[ctx.user.user_type]))
    message = None
    if ctx.query.get("inactive"):
        message = "This account is suspended or closed, so its session has ended."
    return ctx.render(
        "auth/login.html", values={"next": ctx.query.get("next", "")}, errors={},
        message=message,
    )  # fmt: skip


async def login(ctx: PageContext) -> Response:
    values = {"email": ctx.form["email"], "next": ctx.form["next"]}
    try:
        body: LoginRequest = convert(
            {"email": ctx.form["email"], "password": ctx.form["password"]}, LoginRequest
        )
        pair = await auth.login(ctx.state, body, ctx.client_ip)
    except ApiError as error:
        messages = {
            ErrorCode.INVALID_CREDENTIALS: "Wrong email or password.",
            ErrorCode.VALIDATION_FAILED: "Enter your email and password.",
        }
        errors: Errors = {"form": messages.get(error.code, error.message)}
        response = ctx.render(
            "auth/login.html", values=values, errors=errors, message=None, status=error.status
        )
        if "Retry-After" in error.headers:
            response.headers["Retry-After"] = error.headers["Retry-After"]
        return response
    return _begin(ctx, pair, "/")


async def register_form(ctx: PageContext) -> Response:
    kind = ctx.query.get("as", "developer")
    values = {"user_type": kind if kind in ("creator", "developer") else ""}
    return ctx.render("auth/register.html", values=values, errors={})


async def register(ctx: PageContext) -> Response:
    values = {name: ctx.form[name] for name in ("email", "user_type", "display_name")}
    try:
        body: RegisterRequest = convert(
            blank_to_none({**values, "password": ctx.form["password"]}), RegisterRequest
        )
        pair = await auth.register(ctx.state, body)
    except ApiError as error:
        errors = field_errors(error)
        if error.code is ErrorCode.CONFLICT:
            errors = {"email": "An account with this email exists. Log in instead?"}
        return ctx.render("auth/register.html", values=values, errors=errors, status=error.status)
    return _begin(ctx, pair, "/")


async def account(ctx: PageContext) -> Response:
    return ctx.render("auth/account.html")


async def _end_playground_key(ctx: PageContext) -> None:
    if ctx.user.user_type is UserType.DEVELOPER:
        await session_keys.revoke_for_user(ctx.state, ctx.user)


async def logout(ctx: PageContext) -> Response:
    await _end_playground_key(ctx)
    await log_out(ctx.state, ctx.request, ctx.session)
    return ctx.redirect("/login", notice="You are logged out.")


async def logout_everywhere(ctx: PageContext) -> Response:
    await _end_playground_key(ctx)
    await log_out_everywhere(ctx.state, ctx.session)
    return ctx.redirect("/login", notice="You are logged out on every device.")


PAGES = [
    Page("GET", "/login", login_form),
    Page("POST", "/login", login),
    Page("GET", "/register", register_form),
    Page("POST", "/register", register),
    Page("GET", "/account", account),
    Page("POST", "/logout", logout),
    Page("POST", "/logout/everywhere", logout_everywhere),
]
