"""Creator routes: path → handler. Creators only."""

from __future__ import annotations

from control_plane.api import Context, RouteGroup
from control_plane.auth.principal import UserType
from control_plane.creators import service
from control_plane.creators.schemas import CreatorOut, UpdateCreatorRequest, WalletRequest


async def get_creator_me(context: Context) -> CreatorOut:
    return await service.get_me(context.state, context.user)


async def update_creator_me(context: Context, body: UpdateCreatorRequest) -> CreatorOut:
    return await service.update_me(context.state, context.user, body)


async def set_creator_wallet(context: Context, body: WalletRequest) -> CreatorOut:
    return await service.set_wallet(context.state, context.user, body)


CREATORS = frozenset({UserType.CREATOR})
_GROUP = RouteGroup("/api/v1/creators", CREATORS, "creators")
ROUTES = [
    _GROUP.route("GET", "/me", get_creator_me, "The calling creator's profile",
                 response=CreatorOut),
    _GROUP.route("PUT", "/me", update_creator_me,
                 "Update display name, bio or avatar URL (fields left out keep their values)",
                 body=UpdateCreatorRequest, response=CreatorOut),
    _GROUP.route("PUT", "/me/wallet", set_creator_wallet,
                 "Bind the payout wallet (an Ethereum address; mixed case must pass EIP-55)",
                 body=WalletRequest, response=CreatorOut),
]  # fmt: skip
