"""The Anthropic dialect's translation of the pipeline's OpenAI output, without a network: the
event sequence is the same wherever the OpenAI bytes were cut, blocks open and close in order,
and a withheld answer becomes a refusal."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.dialects.anthropic_messages import MessageEvents, message_of


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "chatcmpl-7", "model": "m", "object": "chat.completion.chunk",
            "choices": [choice], **extra}  # fmt: skip
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM = b"".join([
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "search", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
    chunk({}, "tool_calls"),
    b'data: {"id":"chatcmpl-7","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,'
    b'"prompt_tokens_details":{"cached_tokens":5},"cost":0.01,"cost_units":1}}\n\n',
    b"data: [DONE]\n\n",
])  # fmt: skip


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        kind, data = block.split(b"\n")
        out.append((kind.removeprefix(b"event: ").decode(), orjson.loads(data[6:])))
    return out


def translate(pieces: list[bytes]) -> bytes:
    translator = MessageEvents()
    return b"".join(translator.feed(piece) for piece in pieces) + translator.finish()


def test_the_event_sequence() -> None:
    sequence = events(translate([STREAM]))
    assert [kind for kind, _ in sequence] == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert sequence[0][1]["message"]["id"] == "msg_7"
    assert sequence[5][1]["content_block"] == {
        "type": "tool_use", "id": "call_1", "name": "search", "input": {},
    }  # fmt: skip
    assert [data["index"] for kind, data in sequence if kind.startswith("content_block")] == (
        [0] * 4 + [1] * 4
    )
    delta = sequence[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    # Anthropic counts the cached prompt tokens apart from input_tokens.
    assert delta["usage"] == {"input_tokens": 4, "output_tokens": 4, "cost": 0.01,
                              "cost_units": 1, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 5}  # fmt: skip


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_the_translation_does_not_depend_on_where_the_bytes_were_cut(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert translate(pieces) == translate([STREAM])


def test_a_stream_without_done_is_still_closed() -> None:
    kinds = [kind for kind, _ in events(translate([STREAM.replace(b"data: [DONE]\n\n", b"")]))]
    assert kinds[-2:] == ["message_delta", "message_stop"]


def test_a_withheld_answer_is_a_refusal() -> None:
    completion = orjson.dumps({
        "id": "chatcmpl-1", "model": "m",
        "choices": [{"index": 0, "finish_reason": "content_filter",
                     "message": {"role": "assistant", "content": "[withheld]"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "cost": 0, "cost_units": 0},
    })  # fmt: skip
    message = orjson.loads(message_of(completion))
    assert message["stop_reason"] == "refusal"
    assert message["content"] == [{"type": "text", "text": "[withheld]"}]
    assert message["usage"]["cost_units"] == 0
