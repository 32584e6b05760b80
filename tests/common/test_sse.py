"""The one SSE reader (`common.sse`): the same events however the network cuts the bytes."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.sse import (
    MAX_LINE_BYTES,
    EventFramer,
    SseError,
    SseEvent,
    SseParser,
    encode_event,
    event_data,
    events_from_end,
    events_of,
    parse_event,
    split_events,
)

FIELD_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]), max_size=20
)
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["", "message_start", "content_block_delta", "ping"]),
        st.lists(FIELD_TEXT, min_size=1, max_size=3),  # data lines
    ),
    max_size=8,
)
CUTS = st.lists(st.integers(min_value=0, max_value=2000), max_size=30)


def encode(
    events: list[tuple[str, list[str]]], newline: bytes, comments: bool, blank_lines: bool = False
) -> bytes:
    out = b""
    for name, lines in events:
        if comments:
            out += b": keep-alive" + newline
        if name:
            out += b"event: " + name.encode() + newline
        for line in lines:
            out += b"data: " + line.encode() + newline
        out += newline
        if blank_lines:
            out += newline  # a stray blank line between events
    return out


def pieces(raw: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cut for cut in cuts if cut <= len(raw)), len(raw)]
    return [raw[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=300)
@given(
    events=EVENTS,
    newline=st.sampled_from([b"\n", b"\r\n"]),
    comments=st.booleans(),
    cuts=CUTS,
)
def test_property_sse_parser_yields_the_same_events_however_the_bytes_are_split(
    events: list[tuple[str, list[str]]], newline: bytes, comments: bool, cuts: list[int]
) -> None:
    """Network reads cut a stream anywhere (inside a line, between \\r and \\n, inside a
    UTF-8 sequence): the parser yields the same events as from the whole stream at once."""
    raw = encode(events, newline, comments)
    expected = [SseEvent(name or "message", "\n".join(lines).encode()) for name, lines in events]
    assert events_of(raw) == expected
    split = SseParser()
    got: list[SseEvent] = []
    for piece in pieces(raw, cuts):
        got += split.feed(piece)
    assert got + split.flush() == expected


@settings(max_examples=300)
@given(
    events=EVENTS,
    newline=st.sampled_from([b"\n", b"\r\n"]),
    comments=st.booleans(),
    blank_lines=st.booleans(),
    lead=st.sampled_from([b"", b"\n", b"\r\n", b"\n\n", b"\r\n\n"]),
    cut_tail=st.integers(min_value=0, max_value=40),
    cuts=CUTS,
)
def test_property_the_framer_hands_out_the_same_raw_events_however_the_bytes_are_split(
    *,
    events: list[tuple[str, list[str]]],
    newline: bytes,
    comments: bool,
    blank_lines: bool,
    lead: bytes,
    cut_tail: int,
    cuts: list[int],
) -> None:
    """Split at any byte, the framer yields exactly the raw events of the whole stream (each
    with its blank line, byte for byte); together with the unfinished rest that is every
    byte it was given. `feed_whole` and `feed_bare` make the same cut, and each raw event's
    data is the event the parser sees."""
    raw = lead + encode(events, newline, comments, blank_lines)
    raw = raw[: max(0, len(raw) - cut_tail)]  # the stream may end inside an event
    whole = split_events(raw)
    assert list(events_from_end(raw)) == whole[::-1]
    framer, joined, bare = EventFramer(), EventFramer(), EventFramer()
    got: list[bytes] = []
    got_bare: list[bytes] = []
    concatenated = b""
    for piece in pieces(raw, cuts):
        got += framer.feed(piece)
        concatenated += joined.feed_whole(piece)
        events_bare = bare.feed_bare(piece)
        # One line each (the leak filter reads them as such), never a blank one.
        assert events_bare is None or all(e and e.find(b"\n") < 0 for e in events_bare)
        # Without their blank line when it is LF LF; else nothing consumed, `feed`'s turn.
        got_bare += bare.feed(piece) if events_bare is None else [e + b"\n\n" for e in events_bare]
    rest = framer.flush()
    assert got + ([rest] if rest else []) == whole
    assert got_bare == got
    assert bare.flush() == rest
    assert b"".join(got) == concatenated
    assert concatenated + joined.flush() == raw
    assert all(event.endswith(b"\n") for event in got)
    parsed = [event_data(event) for event in got]
    assert [data for data in parsed if data is not None] == [
        event.data for event in SseParser().feed(raw)
    ]


def test_the_parser_splits_on_newline_only() -> None:
    """U+2028/U+2029/U+0085 and a lone form feed are not line ends (str.splitlines says
    they are): they reach the JSON parser untouched."""
    payload = "a\u2028b\u2029c\x85d\x0ce\x1cf"
    raw = encode_event(orjson.dumps({"t": payload}))
    [event] = SseParser().feed(raw)
    assert orjson.loads(event.data) == {"t": payload}
    assert event_data(raw) == orjson.dumps({"t": payload})


def test_the_parser_drops_an_event_cut_by_the_end_of_the_stream() -> None:
    parser = SseParser()
    assert parser.feed(b'data: {"a": 1}\n\ndata: {"b"') == [SseEvent("message", b'{"a": 1}')]
    assert parser.flush() == []
    parser = SseParser()
    assert parser.feed(b'data: {"a": 1}\n') == []
    assert parser.flush() == [SseEvent("message", b'{"a": 1}')]  # whole line, no blank line


def test_fields_comments_and_events_without_data() -> None:
    raw = b": ping\n\nevent: x\nid: 7\nretry: 10\ndata:no-space\ndata\n\nevent: lonely\n\n"
    assert events_of(raw) == [SseEvent("x", b"no-space\n")]
    assert event_data(b": keep-alive\n\n") is None
    assert event_data(b"\n") is None
    assert parse_event(b"event: ping\n\n") is None
    assert encode_event(b"{}", "ping") == b"event: ping\ndata: {}\n\n"


def test_a_line_over_the_limit_is_refused_by_the_parser_not_by_a_relay() -> None:
    line = b"data: " + b"x" * MAX_LINE_BYTES
    with pytest.raises(SseError):
        SseParser().feed(line)
    assert EventFramer().feed(line) == []  # a relay's framer only ever holds one event
