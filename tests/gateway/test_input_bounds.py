"""Request bodies and paths that once answered 500 or reached storage raw (issue 9 items 1 and
13): JSON nested 254-1,023 levels deep in a forwarded field, forwarded fields of the wrong type,
and agent ids that are not UUIDs. The exact inputs through a real gateway, then hypothesis
generating deep nesting in every forwarded place against the parser."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as redis_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from common import keyspace
from common.errors import ApiError
from common.validation import MAX_NESTING
from gateway.chat_request import parse_chat_request
from tests.gateway.helpers import chat_url, make_caller

_HELLO = b'[{"role":"user","content":"hi"}]'


def _nested(depth: int, leaf: bytes = b'"x"', *, kind: str = "list") -> bytes:
    """`depth` levels of arrays (or objects) around `leaf`, as JSON text."""
    if kind == "list":
        return b"[" * depth + leaf + b"]" * depth
    return b'{"a":' * depth + leaf + b"}" * depth


def _body(messages: bytes = _HELLO, **fields: bytes) -> bytes:
    extra = b"".join(b',"' + name.encode() + b'":' + value for name, value in fields.items())
    return b'{"messages":' + messages + extra + b"}"


# Each once reached the provider request's serializer, which gave up: 500.
DEEP_BODIES = {
    "stop 254": _body(stop=_nested(254)),
    "stop 600": _body(stop=_nested(600)),
    "stop 1022": _body(stop=_nested(1022)),
    "tools inner object": _body(tools=b'[{"type":"function","function":{"name":"f","parameters":'
                                      + _nested(300, kind="object") + b"}}]"),
    "response_format": _body(response_format=_nested(400, kind="object")),
    "tool_choice": _body(tool_choice=_nested(260, kind="object")),
    "logit_bias": _body(logit_bias=b'{"1":' + _nested(300) + b"}"),
    "extra field in a message part": _body(
        b'[{"role":"user","content":[{"type":"text","text":"hi","x":' + _nested(500) + b"}]}]"
    ),
    "extra field in a message": _body(b'[{"role":"user","content":"hi","x":'
                                      + _nested(900, kind="object") + b"}]"),
    "seed beyond int64": _body(seed=b"9223372036854775808"),
    "stop of numbers": _body(stop=b"[1,2]"),
    "tools not an array": _body(tools=b'"all"'),
    "parallel_tool_calls not a boolean": _body(parallel_tool_calls=b'"yes"'),
}  # fmt: skip


@pytest.mark.parametrize("name", list(DEEP_BODIES))
async def test_deep_or_mistyped_forwarded_fields_are_a_400_before_admission(
    gateway_url: str, db_pool: asyncpg.Pool, name: str
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            chat_url(gateway_url, caller.agent.agent_id),
            content=DEEP_BODIES[name],
            headers={"X-AgentLink-Key": caller.key.plaintext, "content-type": "application/json"},
        )
    assert response.status_code == 400, response.text[:300]
    body = response.json()
    assert body["error"]["code"] in ("40001", "40002")
    assert set(body) == {"error", "request_id"}


def test_real_bodies_keep_their_forwarded_fields() -> None:
    raw = _body(
        stop=b'["\\n\\n", "END"]', seed=b"42", tools=b'[{"type":"function","function":{"name":'
        b'"f","parameters":{"type":"object","properties":{"a":{"type":"array","items":'
        b'{"type":"object","properties":{"b":{"type":"string"}}}}}}}}]',
        response_format=b'{"type":"json_schema","json_schema":{"name":"x","schema":{}}}',
        logit_bias=b'{"50256": -100}', tool_choice=b'"auto"', parallel_tool_calls=b"false",
    )  # fmt: skip
    chat = parse_chat_request(raw)
    assert chat.options["stop"] == ["\n\n", "END"]
    assert chat.options["seed"] == 42
    assert chat.options["logit_bias"] == {"50256": -100}
    assert chat.options["tools"][0]["function"]["name"] == "f"


_LONG_ID = "a" * 10_000
NOT_UUIDS = [_LONG_ID, "not-an-agent", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "%00", "1" * 37]


@pytest.mark.parametrize("raw_id", NOT_UUIDS)
async def test_non_uuid_agent_ids_are_a_404_before_any_lookup(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, raw_id: str
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            chat_url(gateway_url, raw_id),
            content=_body(),
            headers={"X-AgentLink-Key": caller.key.plaintext},
        )
    assert response.status_code == 404, response.text[:300]
    assert response.json()["error"]["code"] == "40401"
    # No negative-cache record was written under the raw id, and the key was not even read.
    assert await redis.exists(keyspace.agent_record(raw_id)) == 0
    assert await redis.exists(keyspace.api_key_record(caller.shard, caller.key.key_hash)) == 0


# --- the class, generated -------------------------------------------------------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))


def _deep(depth: int, leaf: Any, kinds: list[bool]) -> bytes:
    """JSON text of `depth` levels (arrays or objects, by `kinds` in turn) around `leaf`;
    written as text because orjson.dumps itself stops at 254 levels."""
    opening, closing = b"", b""
    for index in range(depth):
        is_list = kinds[index % len(kinds)]
        opening += b"[" if is_list else b'{"k":'
        closing = (b"]" if is_list else b"}") + closing
    return opening + orjson.dumps(leaf) + closing


_DEEP = "__deep__"
_PLACES = {
    "response_format": lambda deep: {"response_format": {"type": "json_schema", "s": deep}},
    "tools": lambda deep: {"tools": [{"type": "function", "function": {"parameters": deep}}]},
    "tool_choice": lambda deep: {"tool_choice": {"type": "function", "x": deep}},
    "message": lambda deep: {"messages": [{"role": "user", "content": "hi", "x": deep}]},
    "part": lambda deep: {"messages": [{"role": "user",
                                        "content": [{"type": "text", "text": "t", "x": deep}]}]},
}  # fmt: skip


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.sampled_from(sorted(_PLACES)),
    st.integers(min_value=MAX_NESTING, max_value=1000),
    _leaf,
    st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_property_deep_nesting_anywhere_forwarded_is_a_400_never_a_500(
    place: str, depth: int, leaf: Any, kinds: list[bool]
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    body |= _PLACES[place](_DEEP)
    raw = orjson.dumps(body).replace(orjson.dumps(_DEEP), _deep(depth, leaf, kinds))
    with pytest.raises(ApiError) as raised:
        parse_chat_request(raw)
    assert raised.value.status == 400


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(_PLACES)), st.integers(min_value=0, max_value=MAX_NESTING - 6))
def test_property_shallow_bodies_parse_and_serialize(place: str, depth: int) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    body |= _PLACES[place](_DEEP)
    raw = orjson.dumps(body).replace(orjson.dumps(_DEEP), _deep(depth, "x", [True, False]))
    chat = parse_chat_request(raw)
    orjson.dumps({"messages": chat.messages, **chat.options})  # what the upstream call does
