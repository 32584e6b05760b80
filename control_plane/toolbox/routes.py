"""Toolbox routes: path → handler. Developers only."""

from __future__ import annotations

from common.domain import UserType
from control_plane.api import ApiRoute, Context
from control_plane.toolbox import service
from control_plane.toolbox.schemas import Toolbox

_DEVELOPERS = frozenset({UserType.DEVELOPER})


async def get_toolbox(context: Context) -> Toolbox:
    return await service.toolbox(context.state, context.user)


async def add_to_toolbox(context: Context) -> Toolbox:
    return await service.add(context.state, context.user, context.path["agent_id"])


async def remove_from_toolbox(context: Context) -> None:
    await service.remove(context.state, context.user, context.path["agent_id"])


PREFIX = "/api/v1/developers/toolbox"
ROUTES = [
    ApiRoute("GET", PREFIX, get_toolbox,
             "The agents your keys list as MCP tools on the gateway's /mcp, in the order added",
             response=Toolbox, user_types=_DEVELOPERS, tags=("developers",)),
    ApiRoute("PUT", f"{PREFIX}/{{agent_id}}", add_to_toolbox,
             "Add an active agent to your MCP toolbox (idempotent); answers the toolbox",
             response=Toolbox, user_types=_DEVELOPERS, tags=("developers",)),
    ApiRoute("DELETE", f"{PREFIX}/{{agent_id}}", remove_from_toolbox,
             "Remove an agent from your MCP toolbox", status=204, user_types=_DEVELOPERS,
             tags=("developers",)),
]  # fmt: skip
