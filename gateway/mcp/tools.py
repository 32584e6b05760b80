"""Which agents a key sees as MCP tools, and what each tool looks like.

A tool's name carries its agent's id (common/tool_names.py), so a `tools/call` goes to
admission with no lookup first: the hot path stays one Redis round trip before the provider,
as for a chat call. Any name whose id part is an agent's works, listed or not: the listing
shows what the developer chose, admission decides what may be called.

The listing itself reads Postgres (one query), like the models route: it is not a call.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from common.domain import units_for_price
from common.tool_names import tool_name

MARKETPLACE_SEARCH = "marketplace_search"
MAX_TOOL_DESCRIPTION_CHARS = 1000

AGENT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": "Your message to the agent."},
        "messages": {
            "type": "array",
            "description": (
                "Earlier turns of the conversation, oldest first; the prompt follows them "
                "as the last user turn."
            ),
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["user", "assistant"]},
                    "content": {"type": "string"},
                },
                "required": ["role", "content"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["prompt"],
    "additionalProperties": False,
}

MARKETPLACE_SEARCH_TOOL: dict[str, Any] = {
    "name": MARKETPLACE_SEARCH,
    "title": "Search the AgentLink marketplace",
    "description": (
        "Find published AgentLink agents by what they do. Free. Each result names the tool "
        "that calls the agent, its price per call and its rating."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What the agent should do."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    "annotations": {"readOnlyHint": True, "openWorldHint": False},
}


def price_text(price: Decimal, unit_price: Decimal, trial_calls: int) -> str:
    units = units_for_price(price, unit_price)
    text = f"Price: ${format(price.normalize(), 'f')} per call ({units} quota unit"
    text += "s)" if units != 1 else ")"
    if trial_calls:
        text += f"; your first {trial_calls} calls of this agent are free"
    return text + "."


def agent_tool(
    row: asyncpg.Record | dict[str, Any], *, unit_price: Decimal, trial_calls: int
) -> dict[str, Any]:
    description = (row["description"] or "").strip()
    if len(description) > MAX_TOOL_DESCRIPTION_CHARS:
        description = description[: MAX_TOOL_DESCRIPTION_CHARS - 1].rstrip() + "…"
    price = price_text(row["price_per_call"], unit_price, trial_calls)
    return {
        "name": tool_name(row["name"], str(row["id"])),
        "title": row["name"],
        "description": f"{description}\n\n{price}" if description else price,
        "inputSchema": AGENT_INPUT_SCHEMA,
        "annotations": {"title": row["name"], "readOnlyHint": True, "openWorldHint": True},
    }


_TOOLBOX = """
    SELECT a.id, a.name, a.description, a.price_per_call
    FROM developer_toolbox t JOIN agents a ON a.id = t.agent_id
    WHERE t.user_id = $1 AND a.status = 'active'
    ORDER BY t.added_at, a.id"""


# A key with an allow-list (migration 0012, PATCH /developers/keys/{id}) lists exactly its
# agents, in the list's order; the toolbox is for the keys without one.
_ALLOWED = """
    SELECT a.id, a.name, a.description, a.price_per_call
    FROM api_keys k
    CROSS JOIN LATERAL unnest(k.allowed_agents) WITH ORDINALITY AS allowed (id, position)
    JOIN agents a ON a.id = allowed.id
    WHERE k.key_hash = $1 AND a.status = 'active'
    ORDER BY allowed.position"""
_RESTRICTED = """
    SELECT coalesce(cardinality(allowed_agents), 0) > 0 FROM api_keys WHERE key_hash = $1"""


async def listed_tools(
    db: asyncpg.Pool, user_id: str, key_hash: str, *, unit_price: Decimal, trial_calls: int
) -> list[dict[str, Any]]:
    """The key's allowed agents (active ones) when it has an allow-list: nothing else could
    be called with it. Otherwise the developer's toolbox agents, then `marketplace_search`."""
    if await db.fetchval(_RESTRICTED, key_hash):
        rows = await db.fetch(_ALLOWED, key_hash)
        return [agent_tool(row, unit_price=unit_price, trial_calls=trial_calls) for row in rows]
    rows = await db.fetch(_TOOLBOX, user_id)
    tools = [agent_tool(row, unit_price=unit_price, trial_calls=trial_calls) for row in rows]
    tools.append(MARKETPLACE_SEARCH_TOOL)
    return tools
