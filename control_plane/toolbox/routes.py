"""Toolbox routes: path → handler. Developers only."""

from __future__ import annotations

from common.domain import UserType
from control_plane.api import Context, RouteGroup
from control_plane.toolbox import service
from control_plane.toolbox.schemas import Toolbox


async def get_toolbox(context: Context) -> Toolbox:
    return await service.toolbox(context.state, context.user)


async def add_to_toolbox(context: Context) -> Toolbox:
    return await service.add(context.state, context.user, context.path["agent_id"])


async def remove_from_toolbox(context: Context) -> None:
    await service.remove(context.state, context.user, context.path["agent_id"])


_DEVELOPER = RouteGroup("/api/v1/developers/toolbox", frozenset({UserType.DEVELOPER}),
                        "developers")  # fmt: skip
ROUTES = [
    _DEVELOPER.route("GET", "", get_toolbox,
                     "The agents your keys list as MCP tools on the gateway's /mcp, in the order "
                     "added", response=Toolbox),
    _DEVELOPER.route("PUT", "/{agent_id}", add_to_toolbox,
                     "Add an active agent to your MCP toolbox (idempotent); answers the toolbox",
                     response=Toolbox),
    _DEVELOPER.route("DELETE", "/{agent_id}", remove_from_toolbox,
                     "Remove an agent from your MCP toolbox", status=204),
]  # fmt: skip
