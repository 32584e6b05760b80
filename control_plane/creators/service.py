"""The creator's own profile and payout wallet.

Every value is validated here with the database's limits before any SQL runs, so a bad value
is a 400 `40002` naming its field, never a constraint violation turned into a 500.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg

from common.errors import ApiError, ErrorCode
from common.validation import has_control_characters, invalid, shown_name
from control_plane.auth.principal import Principal
from control_plane.creators import repository
from control_plane.creators.schemas import CreatorOut, UpdateCreatorRequest, WalletRequest
from control_plane.creators.wallet import InvalidAddress, normalise_wallet_address
from control_plane.rows import from_row
from control_plane.state import ControlPlaneState


def _avatar_url(raw: str) -> str:
    url = raw.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise invalid("avatar_url", "Expected an http(s) URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise invalid("avatar_url", "Expected an http(s) URL of at most 2048 characters.")
    if has_control_characters(url) or any(char.isspace() for char in url):
        raise invalid("avatar_url", "A URL cannot contain spaces or control characters.")
    return url


def _out(row: asyncpg.Record) -> CreatorOut:
    return from_row(CreatorOut, row)


async def get_me(state: ControlPlaneState, principal: Principal) -> CreatorOut:
    async with state.db.acquire() as connection:
        row = await repository.profile(connection, principal.user_id)
    if row is None:
        raise ApiError(ErrorCode.USER_NOT_FOUND, "No creator profile for this account.")
    return _out(row)


async def update_me(
    state: ControlPlaneState, principal: Principal, request: UpdateCreatorRequest
) -> CreatorOut:
    changes: dict[str, str | None] = {}
    if isinstance(request.display_name, str):
        changes["display_name"] = shown_name("display_name", request.display_name)
    if request.bio is None or isinstance(request.bio, str):
        if request.bio is not None and has_control_characters(request.bio, allow_newlines=True):
            raise invalid("bio", "Control characters other than line breaks are not allowed.")
        changes["bio"] = request.bio
    if request.avatar_url is None or isinstance(request.avatar_url, str):
        changes["avatar_url"] = (
            None if request.avatar_url is None else _avatar_url(request.avatar_url)
        )
    if not changes:
        raise invalid("body", "Nothing to update: give display_name, bio or avatar_url.")
    async with state.db.acquire() as connection, connection.transaction():
        if not await repository.update_profile(connection, principal.user_id, changes):
            raise ApiError(ErrorCode.USER_NOT_FOUND, "No creator profile for this account.")
        row = await repository.profile(connection, principal.user_id)
    assert row is not None  # updated just above, in this transaction
    return _out(row)


async def set_wallet(
    state: ControlPlaneState, principal: Principal, request: WalletRequest
) -> CreatorOut:
    try:
        address = normalise_wallet_address(request.wallet_address)
    except InvalidAddress as error:
        raise invalid("wallet_address", str(error)) from None
    async with state.db.acquire() as connection, connection.transaction():
        if not await repository.set_wallet_address(connection, principal.user_id, address):
            raise ApiError(ErrorCode.USER_NOT_FOUND, "No creator profile for this account.")
        row = await repository.profile(connection, principal.user_id)
    if row is None:
        raise ApiError(ErrorCode.USER_NOT_FOUND, "No creator profile for this account.")
    return _out(row)
