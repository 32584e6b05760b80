"""An agent's MCP tool name: `<slug of the agent's name>_<the agent id's 32 hex digits>`.

The gateway lists and calls tools by it (gateway/mcp) and the control plane shows it in the
developer's toolbox, so both spell it from this one rule. The name carries the agent id, so
a call needs no lookup before admission; the slug is only for people and models to read.
"""

from __future__ import annotations

import re
import uuid

MAX_TOOL_NAME = 128  # the MCP specification's limit
_SLUG_CHARS = 40
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_AGENT_HEX = re.compile(r"[0-9a-f]{32}")


def tool_name(agent_name: str, agent_id: str) -> str:
    slug = _NOT_SLUG.sub("_", agent_name.lower()).strip("_")[:_SLUG_CHARS].strip("_")
    return f"{slug or 'agent'}_{uuid.UUID(agent_id).hex}"


def agent_id_of(name: str) -> str | None:
    """The agent id a tool name carries, or None for a name that is not an agent's."""
    if len(name) > MAX_TOOL_NAME or len(name) < 34 or name[-33] != "_":
        return None
    tail = name[-32:]
    if not _AGENT_HEX.fullmatch(tail):
        return None
    return str(uuid.UUID(tail))
