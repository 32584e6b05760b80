"""The stream's usage chunk as the client asked for it, whatever the network cuts."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from common.sse import events_of, split_events
from gateway.client_usage import CallCost, UsageChunks, with_cost


def chunk(obj: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
STREAM = (
    chunk({**HEAD, "choices": [{"index": 0, "delta": {"content": "Hel"}}], "usage": None})
    + chunk({**HEAD, "choices": [{"index": 0, "delta": {"content": "lo"}}], "usage": None})
    + chunk({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": None})
    + chunk({**HEAD, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    + b"data: [DONE]\n\n"
)  # fmt: skip
COST = CallCost.of(2, Decimal("0.01"))


def relay(pieces: list[bytes], *, include_usage: bool) -> list[dict[str, Any]]:
    stream = UsageChunks(include_usage=include_usage, cost=COST)
    out = b"".join(stream.feed(piece) for piece in pieces) + stream.finish()
    events = [event.data for event in events_of(out)]
    assert events[-1] == b"[DONE]"
    return [orjson.loads(data) for data in events[:-1]]


def cut(data: bytes, at: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *at})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=6), st.booleans())
def test_usage_chunk_only_when_asked_at_any_split(at: list[int], include: bool) -> None:
    chunks = relay(cut(STREAM, at), include_usage=include)
    texts = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert texts == "Hello"
    usage = [c["usage"] for c in chunks if c["choices"] == []]
    if include:
        assert usage == [{"prompt_tokens": 3, "completion_tokens": 2, "cost": 0.02,
                          "cost_units": 2}]  # fmt: skip
    else:
        assert usage == []
        assert all(c["choices"] for c in chunks)  # the naive loop's c.choices[0] never fails


def test_a_json_answer_gets_an_exact_decimal_cost() -> None:
    body = orjson.dumps({"choices": [], "usage": {"prompt_tokens": 1}})
    cost = CallCost.of(3, Decimal("0.01"))
    assert b'"cost":0.03,"cost_units":3' in with_cost(body, cost, billed=True)
    assert orjson.loads(with_cost(body, cost, billed=False))["usage"]["cost_units"] == 0
    assert with_cost(b"not json", cost, billed=True) == b"not json"


_USAGE_CHUNK = chunk({**HEAD, "choices": [], "usage": {"prompt_tokens": 3}})
_PIECES = st.sampled_from(
    [
        chunk({**HEAD, "choices": [{"index": 0, "delta": {"content": "Hi"}}], "usage": None}),
        _USAGE_CHUNK,
        # usage riding on a content chunk, and a usage key inside the text
        chunk(
            {
                **HEAD,
                "choices": [{"index": 0, "delta": {"content": "x"}}],
                "usage": {"prompt_tokens": 1},
            }
        ),
        chunk({**HEAD, "choices": [{"delta": {"content": '"usage":{'}}], "usage": None}),
        b": keep-alive\n\n",
        b"\n",  # a blank line of its own
        b"data: [DONE]\n\n",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(_PIECES, max_size=12),
    at=st.lists(st.integers(0, 4000), max_size=6),
    include=st.booleans(),
    crlf=st.booleans(),
)
@example(events=[_USAGE_CHUNK, b"\n", _USAGE_CHUNK], at=[], include=False, crlf=False)
def test_property_the_usage_filter_rewrites_exactly_the_events_the_line_rules_give(
    events: list[bytes], at: list[int], include: bool, crlf: bool
) -> None:
    """Property: whatever the framing (blank lines of their own, CRLF) and however the bytes
    are cut, the filter's output is each raw event of the stream (`split_events`) passed
    through the one-event rule: its shortcut for LF streams finds the same events."""
    wire = b"".join(events)
    if crlf:
        wire = wire.replace(b"\n", b"\r\n")
    stream = UsageChunks(include_usage=include, cost=COST)
    out = b"".join(stream.feed(piece) for piece in cut(wire, [a % (len(wire) + 1) for a in at]))
    out += stream.finish()
    reference = UsageChunks(include_usage=include, cost=COST)
    assert out == b"".join(reference._event(event) for event in split_events(wire))
