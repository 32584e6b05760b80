"""Property 1: Prompt Security — every text field a model emits passes the leak guard, not
only `content`: tool call arguments (JSON text, read with its escapes decoded), `refusal`,
the legacy `function_call`, non-streaming and streamed, split anywhere
(gateway/leak_guard/json_text.py, openai_delta.py, openai_completion.py)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from common.sse import events_of
from gateway.leak_guard import (
    WITHHELD_FINISH_REASON,
    WITHHELD_NOTICE,
    SseLeakFilter,
    new_canary,
    withheld_completion,
)
from gateway.leak_guard.json_text import JsonTextScanner, decode_escapes
from tests.gateway.test_leak_guard import (
    BASE,
    CLEAN,
    GUARD,
    NO_SECRETS,
    PROMPT,
    SLOW,
    USAGE,
    choice,
    cuts,
    relay,
    sdk_events,
    split_at,
    split_bytes,
    sse_event,
)

FAST = settings(max_examples=60, deadline=None)
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)


def json_text(value: Any, *, ascii_only: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


def every_letter_escaped(text: str) -> str:
    """A JSON string literal with every character written as `\\uXXXX` (valid JSON)."""
    return '"' + "".join(f"\\u{ord(char):04x}" for char in text) + '"'


LEAKS = {
    "plain": json_text({"query": PROMPT}),
    "ascii escapes": json_text({"query": PROMPT.replace(" ", "\n")}, ascii_only=True),
    "quoted words": json_text({"note": PROMPT.replace("Nordlicht", '"Nordlicht"')}),
    "unicode escapes": '{"q": ' + every_letter_escaped(PROMPT) + "}",
    "split across values": json_text(
        {"a": PROMPT[: len(PROMPT) // 2], "b": PROMPT[len(PROMPT) // 2 :]}
    ),
}


# --- JSON text ---------------------------------------------------------------------------------


@FAST
@given(text=any_text, ascii_only=st.booleans())
def test_escapes_decode_to_the_json_string(text: str, ascii_only: bool) -> None:
    assert decode_escapes(json_text(text, ascii_only=ascii_only)) == f'"{text}"'


def test_raw_json_hides_a_leak_the_decoded_text_shows() -> None:
    raw = LEAKS["ascii escapes"]
    assert not GUARD.check_text(raw)  # "\n" glues "n" to the next word: read raw, no leak
    assert GUARD.check_text(decode_escapes(raw))


def stream_json(raw: str, pieces: list[str], canary: str | None = None) -> tuple[str, bool]:
    scanner = JsonTextScanner(GUARD.scanner(canary))
    out = "".join(scanner.feed(piece) for piece in pieces) + scanner.finish()
    return out, scanner.leaked


@SLOW
@given(value=st.dictionaries(any_text, any_text, max_size=4), ascii_only=st.booleans(), cuts=cuts)
def test_property_1_clean_arguments_are_released_byte_for_byte_for_any_split(
    value: dict[str, str], ascii_only: bool, cuts: list[int]
) -> None:
    raw = json_text({"text": CLEAN, **value}, ascii_only=ascii_only)
    out, leaked = stream_json(raw, split_at(raw, cuts))
    assert not leaked
    assert out == raw


@SLOW
@given(leak=st.sampled_from(sorted(LEAKS)), cuts=cuts)
def test_property_1_prompt_in_arguments_is_caught_for_any_split(leak: str, cuts: list[int]) -> None:
    raw = LEAKS[leak]
    out, leaked = stream_json(raw, split_at(raw, cuts))
    assert leaked
    assert raw.startswith(out)
    assert not GUARD.check_text(decode_escapes(out))


def test_an_escape_cut_by_a_chunk_waits_for_its_end() -> None:
    scanner = JsonTextScanner(NO_SECRETS.scanner())  # holds depend on the text alone
    assert scanner.feed('{"a": "x \\u00') == '{"a": "x '
    assert scanner.feed("e9 \\ud83d") == "\\u00e9 "
    assert scanner.feed("\\ude00 ok") == "\\ud83d\\ude00 "
    assert scanner.feed('"}') == 'ok"}'
    assert scanner.finish() == ""


def test_the_canary_in_arguments_is_caught() -> None:
    canary = new_canary()
    raw = every_letter_escaped(f"the set is {canary} ok")
    assert stream_json(raw, split_at(raw, [3, 17, 40]), canary)[1]


# --- non-streaming -----------------------------------------------------------------------------


def completion(message: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            **BASE,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": USAGE,
        }
    )


def tool_call(arguments: str, index: int = 0) -> dict[str, Any]:
    function = {"name": "search", "arguments": arguments}
    return {"id": f"call_{index}", "type": "function", "function": function}


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_property_1_non_streaming_tool_call_arguments_are_guarded(leak: str) -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [tool_call(LEAKS[leak])]}
    body = completion(message)
    assert GUARD.check_completion(body)
    withheld = orjson.loads(withheld_completion(body))["choices"][0]
    assert withheld["message"]["content"] == WITHHELD_NOTICE
    assert "tool_calls" not in withheld["message"]


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": None, "refusal": f"I cannot say: {PROMPT}"},
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments":
            LEAKS["ascii escapes"]}},
        {"role": "assistant", "content": [{"type": "text", "text": PROMPT}]},
        {"role": "assistant", "content": "", "tool_calls": [tool_call("{}"), tool_call(
            LEAKS["unicode escapes"], 1)]},
    ],
    ids=["refusal", "function_call", "content parts", "second tool call"],
)  # fmt: skip
def test_property_1_non_streaming_refusal_and_function_call_are_guarded(
    message: dict[str, Any],
) -> None:
    assert GUARD.check_completion(completion(message))


def test_clean_tool_calls_pass() -> None:
    arguments = json_text({"query": CLEAN}, ascii_only=True)
    message = {"role": "assistant", "content": None, "tool_calls": [tool_call(arguments)]}
    assert not GUARD.check_completion(completion(message))


# --- streaming ---------------------------------------------------------------------------------


def call_start(index: int) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **tool_call("", index)}]}


def call_piece(index: int, piece: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


def tool_stream(calls: list[list[str]], *, content: str = "") -> bytes:
    """An OpenAI stream: optional content, then each call's start and argument pieces."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": content, "refusal": None}]
    for index, pieces in enumerate(calls):
        deltas.append(call_start(index))
        deltas += [call_piece(index, piece) for piece in pieces]
    events = [sse_event([choice(delta)]) for delta in deltas]
    events.append(sse_event([choice({}, "tool_calls")]))
    events += [sse_event([], usage=USAGE), b"data: [DONE]\n\n"]
    return b"".join(events)


def received(out: bytes) -> tuple[dict[int, str], dict[int, tuple[str, str]], list[Any]]:
    """What an SDK client accumulates: arguments and (id, name) per call index, chunks."""
    arguments: dict[int, str] = {}
    names: dict[int, tuple[str, str]] = {}
    chunks = [chunk for _, chunk in sdk_events(out)]
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk and chunk.choices else []:
            arguments[call.index] = arguments.get(call.index, "") + (
                call.function.arguments or "" if call.function else ""
            )
            if call.id:
                names[call.index] = (call.id, call.function.name if call.function else "")
    return arguments, names, chunks


def assert_withheld(chunks: list[ChatCompletionChunk | None]) -> None:
    finishes = [c for c in chunks if c and c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert finishes[0].choices[0].finish_reason == WITHHELD_FINISH_REASON
    assert finishes[0].choices[0].delta.content == WITHHELD_NOTICE
    assert chunks[-2] is not None
    assert chunks[-2].usage is not None  # usage and [DONE] still close the stream
    assert chunks[-1] is None


@SLOW
@given(leak=st.sampled_from(sorted(LEAKS)), arg_cuts=cuts, byte_cuts=cuts)
def test_property_1_streamed_tool_call_leak_is_withheld_for_any_split(
    leak: str, arg_cuts: list[int], byte_cuts: list[int]
) -> None:
    raw = LEAKS[leak]
    wire = tool_stream([split_at(raw, arg_cuts)])
    sse = SseLeakFilter(GUARD.scanner(new_canary()))
    out = relay(sse, split_bytes(wire, byte_cuts))
    assert sse.leaked
    arguments, names, chunks = received(out)
    assert raw.startswith(arguments.get(0, ""))
    assert not GUARD.check_text(decode_escapes(arguments.get(0, "")))
    assert names == {0: ("call_0", "search")}  # the call's start went out before the leak
    assert_withheld(chunks)


@SLOW
@given(arg_cuts=cuts, byte_cuts=cuts, content=st.sampled_from(["", "Let me look. "]))
def test_property_1_clean_tool_calls_stream_through_for_any_split(
    arg_cuts: list[int], byte_cuts: list[int], content: str
) -> None:
    first = json_text({"query": CLEAN, "note": 'a "quoted" line\nbreak'}, ascii_only=True)
    second = json_text({"city": "Köln", "days": [1, 2]})
    wire = tool_stream(
        [split_at(first, arg_cuts), split_at(second, arg_cuts[::-1])], content=content
    )
    sse = SseLeakFilter(GUARD.scanner(new_canary()))
    out = relay(sse, split_bytes(wire, byte_cuts))
    assert not sse.leaked
    arguments, names, chunks = received(out)
    assert arguments == {0: first, 1: second}
    assert names == {0: ("call_0", "search"), 1: ("call_1", "search")}
    finishes = [c.choices[0].finish_reason for c in chunks if c and c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1] is None


def test_a_calls_held_arguments_go_out_before_the_next_call_starts() -> None:
    # "Nordlicht Outdoor GmbH" starts a prompt run, so the filter holds it...
    first = json_text({"q": "about Nordlicht Outdoor GmbH"})
    wire = tool_stream([[first], ['{"q": "next"}']])
    out = relay(SseLeakFilter(GUARD.scanner()), [wire])
    seen: list[tuple[int, str]] = []
    for _, chunk in sdk_events(out):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk and chunk.choices else []:
            seen.append((call.index, call.function.arguments or "" if call.function else ""))
    # ...until call 1 starts: by then call 0 is whole.
    start_of_1 = next(at for at, (index, _) in enumerate(seen) if index == 1)
    assert "".join(args for index, args in seen[:start_of_1] if index == 0) == first


@pytest.mark.parametrize("field", ["refusal", "reasoning_content"])
def test_property_1_streamed_refusal_leak_is_withheld(field: str) -> None:
    text = f"I won't follow these: {PROMPT}"
    deltas = [{field: text[i : i + 7]} for i in range(0, len(text), 7)]
    events = [sse_event([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [sse_event([choice(delta)]) for delta in deltas]
    events += [sse_event([choice({}, "stop")]), sse_event([], usage=USAGE), b"data: [DONE]\n\n"]
    sse = SseLeakFilter(GUARD.scanner())
    out = relay(sse, [b"".join(events)])
    assert sse.leaked
    released = "".join(
        orjson.loads(event.data)["choices"][0]["delta"].get(field) or ""
        for event in events_of(out)
        if event.data.startswith(b"{") and b'"choices":[{' in event.data
    )
    assert text.startswith(released)
    assert not GUARD.check_text(released)
    assert_withheld([chunk for _, chunk in sdk_events(out)])


def test_clean_refusal_streams_whole() -> None:
    text = "I can't help with that request, but I can suggest a tracking link."
    events = [sse_event([choice({"refusal": text[i : i + 5]})]) for i in range(0, len(text), 5)]
    events += [sse_event([choice({}, "stop")]), b"data: [DONE]\n\n"]
    out = relay(SseLeakFilter(GUARD.scanner()), [b"".join(events)])
    chunks = [chunk for _, chunk in sdk_events(out) if chunk and chunk.choices]
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == text


def test_streamed_legacy_function_call_is_guarded() -> None:
    raw = LEAKS["quoted words"]
    deltas = [{"function_call": {"name": "f", "arguments": ""}}]
    deltas += [{"function_call": {"arguments": raw[i : i + 9]}} for i in range(0, len(raw), 9)]
    events = [sse_event([choice(delta)]) for delta in deltas]
    events += [sse_event([choice({}, "function_call")]), b"data: [DONE]\n\n"]
    sse = SseLeakFilter(GUARD.scanner())
    relay(sse, [b"".join(events)])
    assert sse.leaked


def test_a_leak_in_arguments_stops_the_content_too() -> None:
    wire = tool_stream([[LEAKS["plain"]]])
    wire = wire.replace(
        b"data: [DONE]", sse_event([choice({"content": "more text"})]) + b"data: [DONE]"
    )
    out = relay(SseLeakFilter(GUARD.scanner()), [wire])
    assert b"more text" not in out
