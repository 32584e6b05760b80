"""The developer's body: `parse_chat_request` + `build_upstream_payload`, once per call."""

from __future__ import annotations

from typing import Any

import orjson

from common.domain import AgentConfig
from gateway.chat_request import build_upstream_payload, parse_chat_request

CONFIG = AgentConfig(
    system_prompt="You are a careful support assistant for Acme. " * 20,
    provider="openai",
    model="gpt-4o-mini",
    temperature=0.2,
    max_tokens=512,
)
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Answer in French."},
    {"role": "user", "content": "My order #4411 has not arrived. " * 4},
    {"role": "assistant", "content": "Je suis désolé. Pouvez-vous confirmer l'adresse ? " * 3},
    {"role": "user", "content": [{"type": "text", "text": "12 rue de la Paix, Paris."}]},
]
BODY = orjson.dumps(
    {
        "model": "gpt-4.1",  # ignored: the agent's model wins
        "messages": MESSAGES,
        "stream": True,
        "temperature": 0.2,  # the agent's own value (another one is refused)
        "top_p": 0.9,  # passed: the agent leaves it unset
        "max_tokens": 2048,  # above the agent's cap: the cap applies
        "n": 1,  # accepted as the one choice a call is priced for
        "stop": ["\n\n"],
        "user": "end-user-17",
    }
)


def parse_and_build(body: bytes) -> dict[str, Any]:
    return build_upstream_payload(CONFIG, parse_chat_request(body))


def test_parse_and_build_upstream_payload(benchmark: Any) -> None:
    payload = benchmark(parse_and_build, BODY)
    assert payload["messages"] == [{"role": "system", "content": CONFIG.system_prompt}, *MESSAGES]
    assert payload["model"] == "gpt-4o-mini"
    assert (payload["temperature"], payload["max_tokens"], payload["top_p"]) == (0.2, 512, 0.9)
    assert payload["stop"] == ["\n\n"]
    assert payload["user"] == "end-user-17"
    assert "n" not in payload
    assert payload["stream"] is True
    assert payload["stream_options"] == {"include_usage": True}
