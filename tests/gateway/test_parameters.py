"""The request-parameter table (gateway/parameters.py): every row does what README.md says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as redis_asyncio

from common.domain import AgentConfig
from common.errors import ApiError
from gateway.chat_request import build_upstream_payload, parse_chat_request
from gateway.parameters import PARAMETERS, Treatment
from tests.gateway.helpers import assert_error, chat_url, make_caller, quota_units

README = Path(__file__).parents[2] / "README.md"
USER = [{"role": "user", "content": "hi"}]
AGENT = AgentConfig(system_prompt="P", provider="openai", model="m", temperature=0.3,
                    max_tokens=500)  # fmt: skip
OPEN_AGENT = AgentConfig(system_prompt="P", provider="openai", model="m", temperature=None)


def upstream(config: AgentConfig = AGENT, **fields: Any) -> dict[str, Any]:
    body = orjson.dumps({"messages": USER, **fields})
    return build_upstream_payload(config, parse_chat_request(body))


def refused_field(config: AgentConfig = AGENT, **fields: Any) -> str:
    with pytest.raises(ApiError) as raised:
        upstream(config, **fields)
    assert raised.value.code.value == "40002"
    [detail] = raised.value.details
    assert detail["field"] in raised.value.message
    return str(detail["field"])


def test_the_readme_table_is_the_code_table() -> None:
    text = README.read_text()
    table = text[text.index("| parameter | treatment | rule |") :].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]*) \|$", table, re.M)
    expected = [(p.name, p.treatment.value, p.rule) for p in PARAMETERS]
    assert [(name, treatment.strip(), rule.strip()) for name, treatment, rule in rows] == expected


# Forwarded rows: as sent.
FORWARDED_VALUES: dict[str, Any] = {
    "stop": ["\n"], "seed": 7, "user": "u-1", "response_format": {"type": "json_object"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "tool_choice": "auto", "parallel_tool_calls": False, "presence_penalty": 0.5,
    "frequency_penalty": -0.5, "logit_bias": {"50256": -100},
}  # fmt: skip


@pytest.mark.parametrize("name", [p.name for p in PARAMETERS if p.treatment is Treatment.FORWARDED])
def test_forwarded_parameters_reach_the_provider_as_sent(name: str) -> None:
    assert upstream(**{name: FORWARDED_VALUES[name]})[name] == FORWARDED_VALUES[name]


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
def test_token_caps_may_be_lowered_never_raised(name: str) -> None:
    assert upstream(**{name: 100})["max_tokens"] == 100
    assert upstream(**{name: 5000})["max_tokens"] == 500  # the agent's cap
    assert upstream()["max_tokens"] == 500
    assert upstream(OPEN_AGENT, **{name: 5000})["max_tokens"] == 5000
    assert name == "max_tokens" or name not in upstream(**{name: 100})
    assert refused_field(**{name: 0}) == name
    assert refused_field(**{name: "10"}) == name


def test_integers_written_with_a_fraction_of_zero_are_integers() -> None:
    """JSON Schema (and the OpenAPI document) counts 795.0 as the integer 795; schemathesis
    sent it and got 400 (issue 9, documentation drift)."""
    assert upstream(max_tokens=100.0)["max_tokens"] == 100
    assert upstream(OPEN_AGENT, max_completion_tokens=795.0)["max_tokens"] == 795
    seed = upstream(seed=7.0)["seed"]
    assert (seed, type(seed)) == (7, int)
    assert "n" not in upstream(n=1.0)
    assert refused_field(max_tokens=10.5) == "max_tokens"
    assert refused_field(seed=1.5) == "seed"
    assert refused_field(n=True) == "n"
    assert refused_field(logprobs=0) == "logprobs"


def test_both_token_caps_the_lower_wins() -> None:
    assert upstream(max_tokens=300, max_completion_tokens=200)["max_tokens"] == 200


@pytest.mark.parametrize("name", ["temperature", "top_p"])
def test_sampling_is_the_agents_when_it_sets_one(name: str) -> None:
    fixed = AgentConfig(system_prompt="P", provider="openai", model="m", top_p=0.9,
                        temperature=0.3)  # fmt: skip
    value = getattr(fixed, name)
    assert upstream(fixed)[name] == value
    assert upstream(fixed, **{name: value})[name] == value
    assert refused_field(fixed, **{name: 0.01}) == name
    assert upstream(OPEN_AGENT, **{name: 0.7})[name] == 0.7
    assert name not in upstream(OPEN_AGENT)
    assert refused_field(OPEN_AGENT, **{name: "hot"}) == name


@pytest.mark.parametrize(
    ("name", "harmless", "refused"),
    [("n", 1, 2), ("logprobs", False, True), ("top_logprobs", None, 3), ("store", False, True)],
)
def test_refused_parameters_name_themselves(name: str, harmless: Any, refused: Any) -> None:
    assert [p.treatment for p in PARAMETERS if p.name == name] == [Treatment.REFUSED]
    if harmless is not None:
        assert name not in upstream(**{name: harmless})
    assert refused_field(**{name: refused}) == name


@pytest.mark.parametrize("name", ["functions", "audio", "modalities", "service_tier", "x"])
def test_a_parameter_not_in_the_table_is_refused(name: str) -> None:
    assert refused_field(**{name: ["text"]}) == name


def test_model_is_replaced_messages_and_stream_read_here() -> None:
    payload = upstream(model="gpt-4o", stream=True, stream_options={"include_usage": False})
    assert payload["model"] == "m"
    assert payload["messages"] == [{"role": "system", "content": "P"}, *USER]
    assert payload["stream_options"] == {"include_usage": True}  # metering asks, always
    assert parse_chat_request(orjson.dumps({"messages": USER, "stream": True,
        "stream_options": {"include_usage": True}})).include_usage  # fmt: skip
    assert refused_field(stream=True, stream_options={"include_obfuscation": True}) == (
        "stream_options.include_obfuscation"
    )
    assert refused_field(stream="yes") == "stream"


def test_null_means_not_sent() -> None:
    payload = upstream(n=None, stop=None, temperature=None, max_tokens=None, logprobs=None)
    assert "stop" not in payload
    assert payload["temperature"] == 0.3


async def test_a_refused_parameter_costs_nothing_through_the_gateway(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool, quota=5, trials_used=3)
    async with httpx.AsyncClient() as client:
        ok = await client.post(
            chat_url(gateway_url, caller.agent.agent_id),
            headers={"X-AgentLink-Key": caller.key.plaintext}, json={"messages": USER},
        )  # fmt: skip
        assert ok.status_code == 200
        for body in ({"n": 3}, {"temperature": 1.9}):  # refused before, and after admission
            response = await client.post(
                chat_url(gateway_url, caller.agent.agent_id),
                headers={"X-AgentLink-Key": caller.key.plaintext},
                json={"messages": USER, **body},
            )
            error = assert_error(response, 400, "40002")
            assert error["error"]["details"][0]["field"] == next(iter(body))
    assert await quota_units(redis, caller) == 4  # only the first call
