"""Tool names and sessions, for any input: a tool name is always a valid MCP tool name and
gives its agent id back; a session id belongs to the key that opened it and to no other."""

from __future__ import annotations

import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from common.tool_names import MAX_TOOL_NAME, agent_id_of, tool_name
from gateway.mcp.protocol import new_session_id, session_belongs_to

_MCP_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_KEY_HASHES = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(st.text(max_size=200), st.uuids())
def test_a_tool_name_is_valid_and_carries_its_agent_id(name: str, agent: uuid.UUID) -> None:
    tool = tool_name(name, str(agent))
    assert _MCP_TOOL_NAME.fullmatch(tool)
    assert len(tool) <= MAX_TOOL_NAME
    assert agent_id_of(tool) == str(agent)


@given(st.text(max_size=300))
def test_any_other_text_is_no_agents_tool_or_names_a_canonical_id(text: str) -> None:
    found = agent_id_of(text)
    assert found is None or (str(uuid.UUID(found)) == found and text.endswith(uuid.UUID(found).hex))


@given(_KEY_HASHES, _KEY_HASHES)
def test_a_session_belongs_only_to_the_key_that_opened_it(key: str, other: str) -> None:
    session = new_session_id(key)
    assert session_belongs_to(session, key)
    assert session_belongs_to(session, other) == (key == other)
    assert not session_belongs_to(session[:-1], key)
    assert all(0x21 <= ord(char) <= 0x7E for char in session)  # visible ASCII, as MCP requires
