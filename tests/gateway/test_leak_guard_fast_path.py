"""The leak guard's shortcuts change nothing: on any generated stream, split anywhere, the
SSE filter gives the same bytes and the same verdict as its full path alone, and the stream
scanner's ASCII string methods cut and split text exactly as the normaliser's regexes do.

`SseLeakFilter` reads a content chunk shaped like the last one (same bytes around its text)
with two compares (`_head`/`_tail`); `FullPathOnly` never fills that cache, so every chunk
goes through `_plain_content`'s searches or the JSON parse. Streams mix plain content chunks
with the shapes that must leave the shortcut: escapes, quotes and line breaks in the text,
another id, extra delta fields, a finish_reason beside text, tool calls, refusals, the role
and usage chunks, comments, CRLF framing, and prompt runs that leak.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.leak_guard import LeakGuard, SseLeakFilter, words
from gateway.leak_guard.normaliser import ASCII_ALNUM, ASCII_CUTS, ASCII_WORD, LAST_CUT

PROMPT = (
    "You are the booking assistant of Harbour Lane Dental. Offer the first free slot of the "
    "week, never quote prices for implants, and ask every new patient for their insurance "
    "number before you confirm an appointment with one of our three hygienists."
)
CANARY = "QZ7XW2KV3T5R"
GUARD = LeakGuard(PROMPT)


class FullPathOnly(SseLeakFilter):
    """The filter with its shape cache never filled: no chunk takes the shortcut."""

    @property  # type: ignore[override]
    def _head(self) -> bytes:
        return b""

    @_head.setter
    def _head(self, value: bytes) -> None:
        pass


_TEXT = st.one_of(
    st.sampled_from(words(PROMPT)).map(lambda word: " " + word),
    st.sampled_from(["Hello", " there", "!", " We", " have", " a", " slot", ".", "\n", " "]),
    st.sampled_from(['"', "\\", "\\n", "\u2028", "é", "😀", "你好", "\t", "'", "</"]),
    st.text(max_size=4),
)
_IDS = st.sampled_from(["chatcmpl-A1", "chatcmpl-A1", "chatcmpl-A1", "chatcmpl-B2"])


@st.composite
def _event(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            ["content"] * 8 + ["extra", "lines", "finish", "tool", "refusal", "role", "other"]
        )
    )
    delta: dict[str, Any]
    finish: str | None = None
    if kind in ("content", "lines"):  # "lines": the data cut into two lines inside the text
        delta = {"content": draw(_TEXT) + ("~~" if kind == "lines" else "")}
    elif kind == "extra":  # text, then another field (a string one ends like a plain chunk)
        delta = {"content": draw(_TEXT), "refusal": draw(st.one_of(st.none(), _TEXT))}
    elif kind == "finish":
        delta = draw(st.sampled_from([{}, {"content": " done."}]))
        finish = "stop"
    elif kind == "tool":
        arguments = draw(st.sampled_from(['{"day":', ' "monday"}', " insurance number", ""]))
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}
    elif kind == "refusal":
        delta = {"refusal": draw(_TEXT)}
    elif kind == "role":
        delta = {"role": "assistant", "content": "", "refusal": None}
    else:
        return draw(st.sampled_from([b": keep-alive\n\n", b"data: [DONE]\n\n", b"\n"]))
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    chunk = {
        "id": draw(_IDS),
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "gpt-4o-mini",
        "choices": [choice],
        "usage": None,
    }
    return b"data: " + orjson.dumps(chunk).replace(b"~~", b"\ndata: ") + b"\n\n"


_USAGE = b'data: {"id":"chatcmpl-A1","choices":[],"usage":{"prompt_tokens":9}}\n\n'


def _plain(text: str) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return b"data: " + orjson.dumps({"id": "chatcmpl-A1", "choices": [choice]}) + b"\n\n"


def _relay(sse: SseLeakFilter, pieces: list[bytes]) -> bytes:
    return b"".join([*(sse.feed(piece) for piece in pieces), sse.finish()])


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event(), max_size=40),
    leak=st.booleans(),
    cuts=st.lists(st.integers(0, 20_000), max_size=12),
    crlf=st.booleans(),
)
def test_shape_shortcut_gives_the_full_paths_output(
    events: list[bytes], leak: bool, cuts: list[int], crlf: bool
) -> None:
    """Property: fast path ≡ full path — same bytes out and same leak verdict for any stream
    of chunks and any split of it into reads."""
    if leak:  # a prompt run first (a finish_reason later would end the text), a word a chunk
        events = [_plain(" " + word) for word in PROMPT.split()[3:17]] + events
    wire = b"".join([*events, _USAGE, b"data: [DONE]\n\n"])
    if crlf:
        wire = wire.replace(b"\n", b"\r\n")
    bounds = sorted({0, len(wire), *(cut % (len(wire) + 1) for cut in cuts)})
    pieces = [wire[a:b] for a, b in itertools.pairwise(bounds)]
    fast = SseLeakFilter(GUARD.scanner(CANARY))
    full = FullPathOnly(GUARD.scanner(CANARY))
    assert _relay(fast, pieces) == _relay(full, pieces)
    assert fast.leaked == full.leaked
    if leak:
        assert fast.leaked


@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=12))
def test_ascii_shortcuts_cut_and_split_like_the_regexes(text: str) -> None:
    """Property: the scanner's ASCII shortcuts ≡ the normaliser's regexes — `rstrip` of
    letters and digits ends at LAST_CUT's match, and a lone word stripped of ASCII_CUTS is
    ASCII_WORD's only word."""
    cut = LAST_CUT.match(text)
    assert len(text.rstrip(ASCII_ALNUM)) == (cut.end() if cut is not None else 0)
    lowered = text.lower()
    word = lowered.strip(ASCII_CUTS)
    found = ASCII_WORD.findall(lowered)
    assert (word.isalnum(), bool(word)) == (len(found) == 1, bool(found))
    if word.isalnum():
        assert found == [word]
