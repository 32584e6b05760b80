"""Auth routes: path → handler."""

from __future__ import annotations

from control_plane.api import ApiRoute, Context
from control_plane.auth import service
from control_plane.auth.schemas import LoginRequest, RefreshRequest, RegisterRequest, TokenPair


async def register(context: Context, body: RegisterRequest) -> TokenPair:
    return await service.register(context.state, body)


async def login(context: Context, body: LoginRequest) -> TokenPair:
    return await service.login(context.state, body, context.client_ip)


async def refresh(context: Context, body: RefreshRequest) -> TokenPair:
    return await service.refresh(context.state, body.refresh_token)


async def logout(context: Context, body: RefreshRequest) -> None:
    await service.logout(context.state, context.user, body.refresh_token)


async def logout_everywhere(context: Context) -> None:
    await service.logout_everywhere(context.state, context.user)


PREFIX = "/api/v1/auth"
ROUTES = [
    ApiRoute("POST", f"{PREFIX}/register", register, "Create a creator or developer account",
             body=RegisterRequest, response=TokenPair, status=201, errors=(409,),
             tags=("auth",)),
    ApiRoute("POST", f"{PREFIX}/login", login, "Log in with email and password",
             body=LoginRequest, response=TokenPair, errors=(401, 429), tags=("auth",)),
    ApiRoute("POST", f"{PREFIX}/refresh", refresh, "Rotate a refresh token for a new pair",
             body=RefreshRequest, response=TokenPair, errors=(401,), tags=("auth",)),
    ApiRoute("POST", f"{PREFIX}/logout", logout, "End this session (its refresh-token family)",
             body=RefreshRequest, status=204, tags=("auth",)),
    ApiRoute("POST", f"{PREFIX}/logout-all", logout_everywhere,
             "End every session of the caller (all refresh tokens)", status=204,
             tags=("auth",)),
]  # fmt: skip
