"""Registration, login, token refresh with rotation and reuse detection, logout.

Refresh tokens are opaque random strings; only their SHA-256 is stored. Every refresh
revokes the presented token and issues a new one in the same family. Presenting a token
that was already rotated means it leaked (or was replayed): the whole family is revoked and
the legitimate holder must log in again. Reuse, logout and logout everywhere also end every
access token already issued to the user (control_plane/auth/sessions.py); the user's other
sessions get a new access token from their refresh token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from common.db import DbConnection
from common.domain import UserType
from common.errors import ApiError, ErrorCode
from common.validation import invalid
from control_plane.auth import repository, sessions
from control_plane.auth.principal import AdminRole, Principal
from control_plane.auth.schemas import LoginRequest, RegisterRequest, TokenPair, UserOut
from control_plane.auth.throttle import LoginThrottle, ThrottleSettings
from control_plane.auth.tokens import issue_access_token
from control_plane.state import ControlPlaneState
from crypto.api_keys import random_shard

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REFRESH_PREFIX = "rt_"


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise invalid("email", "Expected an email address")
    return email


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _principal(row: asyncpg.Record) -> Principal:
    role = row["admin_role"]
    return Principal(
        user_id=str(row["id"]),
        user_type=UserType(row["user_type"]),
        admin_role=AdminRole(role) if role else None,
        shard=row["redis_shard"],
        token_generation=row["token_generation"],
    )


async def _issue_pair(
    state: ControlPlaneState,
    connection: DbConnection,
    row: asyncpg.Record,
    family_id: str | None = None,
) -> tuple[TokenPair, str]:
    settings = state.settings
    principal = _principal(row)
    refresh_token = _REFRESH_PREFIX + secrets.token_urlsafe(32)
    token_id = await repository.insert_refresh_token(
        connection,
        user_id=principal.user_id,
        family_id=family_id or str(uuid.uuid4()),
        token_hash=_token_hash(refresh_token),
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    access = issue_access_token(settings.jwt_secret, principal, ttl_s=settings.access_token_ttl_s)
    user = UserOut(principal.user_id, row["email"], row["user_type"], row["admin_role"])
    return TokenPair(access, refresh_token, settings.access_token_ttl_s, user), token_id


async def register(state: ControlPlaneState, request: RegisterRequest) -> TokenPair:
    email = normalise_email(request.email)
    password_hash = state.passwords.hash(request.password)
    async with state.db.acquire() as connection, connection.transaction():
        try:
            row = await repository.insert_user(
                connection, email=email, password_hash=password_hash,
                user_type=request.user_type, shard=random_shard(),
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ApiError(ErrorCode.CONFLICT, "An account with this email exists.") from None
        user_id = str(row["id"])
        if request.user_type == "creator":
            display_name = request.display_name or email.split("@", 1)[0]
            await repository.insert_creator_profile(connection, user_id, display_name)
        else:
            # Seed property 35: a new developer starts with the free quota.
            await repository.insert_quota(connection, user_id, state.settings.free_quota)
        pair, _ = await _issue_pair(state, connection, row)
    return pair


async def login(state: ControlPlaneState, request: LoginRequest, ip: str | None) -> TokenPair:
    email = request.email.strip().lower()
    api = state.settings
    limits = ThrottleSettings(
        api.login_account_limit, api.login_ip_limit, api.login_window_s,
        api.login_account_ceiling, api.login_backoff_max_s,
    )  # fmt: skip
    throttle = LoginThrottle(state.redis, limits)
    await throttle.check(email, ip)
    async with state.db.acquire() as connection:
        row = await repository.user_by_email(connection, email)
        stored_hash = row["password_hash"] if row is not None else state.dummy_password_hash
        # Verify even for unknown emails, so timing does not reveal which accounts exist.
        check = state.passwords.verify(stored_hash, request.password)
        if row is None or not check.ok:
            await throttle.failed(email, ip)
            raise ApiError(ErrorCode.INVALID_CREDENTIALS)
        if row["status"] != "active":
            raise ApiError(ErrorCode.FORBIDDEN, "This account is not active.")
        await throttle.succeeded(email, ip)
        async with connection.transaction():
            if check.new_hash is not None:
                await repository.update_password_hash(connection, str(row["id"]), check.new_hash)
            pair, _ = await _issue_pair(state, connection, row)
    return pair


async def refresh(state: ControlPlaneState, refresh_token: str) -> TokenPair:
    async with state.db.acquire() as connection:
        async with connection.transaction():
            token = await repository.refresh_token_for_update(
                connection, _token_hash(refresh_token)
            )
            if token is None:
                raise ApiError(ErrorCode.INVALID_CREDENTIALS, "Invalid refresh token.")
            if token["revoked_at"] is not None:
                # Reuse of a rotated token: assume theft, end the whole session family.
                await repository.revoke_family(connection, str(token["family_id"]))
                await sessions.end_access_tokens(connection, state.redis, str(token["user_id"]))
                reused = True
            else:
                reused = False
                if token["expires_at"] <= datetime.now(UTC):
                    raise ApiError(ErrorCode.TOKEN_EXPIRED, "The refresh token has expired.")
                user = await repository.user_by_id(connection, str(token["user_id"]))
                if user is None or user["status"] != "active":
                    raise ApiError(ErrorCode.FORBIDDEN, "This account is not active.")
                pair, new_id = await _issue_pair(
                    state, connection, user, family_id=str(token["family_id"])
                )
                await repository.mark_replaced(connection, str(token["id"]), new_id)
        if reused:
            raise ApiError(ErrorCode.INVALID_CREDENTIALS, "Refresh token reuse detected.")
    return pair


async def logout(state: ControlPlaneState, principal: Principal, refresh_token: str) -> None:
    async with state.db.acquire() as connection, connection.transaction():
        token = await repository.refresh_token_for_update(connection, _token_hash(refresh_token))
        if token is not None and str(token["user_id"]) == principal.user_id:
            await repository.revoke_family(connection, str(token["family_id"]))
        await sessions.end_access_tokens(connection, state.redis, principal.user_id)


async def logout_everywhere(state: ControlPlaneState, principal: Principal) -> int:
    """End every session of the user (all refresh-token families and every access token
    already issued); returns how many refresh tokens were revoked."""
    async with state.db.acquire() as connection, connection.transaction():
        revoked = await repository.revoke_user_families(connection, principal.user_id)
        await sessions.end_access_tokens(connection, state.redis, principal.user_id)
        return revoked
