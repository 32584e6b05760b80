"""A cold agent config: `KeyRing.decrypt` + `AgentConfig.from_json` of a ~2 KB prompt.

This runs once per (agent, version) per gateway process (the config cache holds the result),
so it bounds the cost of a cache miss, not of every call.
"""

from __future__ import annotations

from typing import Any

from common.domain import AgentConfig, KnowledgeSettings, ModelTarget
from tests.processes import TEST_KEYRING

AGENT_ID = "6f1c2a4e-8a57-4d1e-9c1b-2f0e5d7a9b31"
VERSION = 7
PROMPT = (
    "You are Atlas, a senior travel planner. Answer in the user's language, be concise, cite "
    "prices in the user's currency, never invent opening hours, and refuse anything unsafe. "
) * 12  # about 2 KB, a typical creator prompt
CONFIG = AgentConfig(
    system_prompt=PROMPT,
    provider="openai",
    model="gpt-4o-mini",
    temperature=0.4,
    max_tokens=800,
    knowledge=KnowledgeSettings(enabled=True, file_ids=("f1", "f2"), top_k=4),
    fallbacks=(ModelTarget("anthropic", "claude-3-5-haiku"),),
)


def open_config(envelope: bytes) -> AgentConfig:
    return AgentConfig.from_json(TEST_KEYRING.decrypt(envelope, agent_id=AGENT_ID, version=VERSION))


def test_decrypt_and_parse_agent_config(benchmark: Any) -> None:
    envelope = TEST_KEYRING.encrypt(CONFIG.to_json(), agent_id=AGENT_ID, version=VERSION)
    assert 2000 <= len(PROMPT) <= 2400
    config = benchmark(open_config, envelope)
    assert config == CONFIG
