"""Response bodies of the toolbox routes."""

from __future__ import annotations

from datetime import datetime

import msgspec


class ToolboxAgent(msgspec.Struct):
    agent_id: str
    tool: str  # the MCP tool name an MCP client calls it by (common/tool_names.py)
    name: str
    description: str | None
    price_per_call: str  # decimal string
    status: str  # only active agents are listed on /mcp
    added_at: datetime


class Toolbox(msgspec.Struct):
    agents: list[ToolboxAgent]
    limit: int
