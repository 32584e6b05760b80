"""The toolbox: which agents a developer's keys list as MCP tools (at most `MAX_AGENTS`)."""

from __future__ import annotations

from typing import Any

from common.errors import ApiError, ErrorCode
from common.tool_names import tool_name
from common.validation import canonical_uuid, money_text
from control_plane.auth.principal import Principal
from control_plane.state import ControlPlaneState
from control_plane.toolbox import repository
from control_plane.toolbox.schemas import Toolbox, ToolboxAgent

MAX_AGENTS = 100


def _entry(row: Any) -> ToolboxAgent:
    agent_id = str(row["id"])
    return ToolboxAgent(
        agent_id=agent_id, tool=tool_name(row["name"], agent_id), name=row["name"],
        description=row["description"], price_per_call=money_text(row["price_per_call"]),
        status=row["status"], added_at=row["added_at"],
    )  # fmt: skip


async def toolbox(state: ControlPlaneState, principal: Principal) -> Toolbox:
    async with state.db.acquire() as connection:
        rows = await repository.listing(connection, principal.user_id)
    return Toolbox([_entry(row) for row in rows], MAX_AGENTS)


async def add(state: ControlPlaneState, principal: Principal, raw_agent_id: str) -> Toolbox:
    """Add an active agent (adding one that is there already changes nothing)."""
    agent_id = canonical_uuid(raw_agent_id)
    if agent_id is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    async with state.db.acquire() as connection, connection.transaction():
        await repository.lock_owner(connection, principal.user_id)
        if await repository.agent_status(connection, agent_id) != "active":
            raise ApiError(ErrorCode.AGENT_NOT_FOUND)
        if not await repository.contains(connection, principal.user_id, agent_id):
            if await repository.size(connection, principal.user_id) >= MAX_AGENTS:
                raise ApiError(
                    ErrorCode.CONFLICT,
                    f"The toolbox holds at most {MAX_AGENTS} agents; remove one first.",
                )
            await repository.add(connection, principal.user_id, agent_id)
    return await toolbox(state, principal)


async def remove(state: ControlPlaneState, principal: Principal, raw_agent_id: str) -> None:
    agent_id = canonical_uuid(raw_agent_id)
    async with state.db.acquire() as connection:
        if agent_id is None or not await repository.remove(connection, principal.user_id, agent_id):
            raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "This agent is not in your toolbox.")
