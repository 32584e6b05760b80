"""The knowledge version as the gateway's agent record holds it (field `knowledge`).

The agent's `knowledge_version` when it has at least one ready file, else 0: so "no
knowledge" costs the gateway nothing, and a version, once used, is never reused (the
retrieval cache is keyed on it). One SQL expression, used wherever an agent record is made
from an `agents` row (the gateway's cold load, every control-plane write-through).
"""

from __future__ import annotations

KNOWLEDGE_RECORD = """CASE WHEN EXISTS (SELECT 1 FROM knowledge_files kf
                                WHERE kf.agent_id = agents.id AND kf.status = 'ready')
         THEN agents.knowledge_version ELSE 0 END AS knowledge_record"""
