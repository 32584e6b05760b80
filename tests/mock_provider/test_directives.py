"""Directive parsing: unit properties of the parser, and end to end through the server."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_provider import MockConfig
from mock_provider.controls import (
    CONTROL_NAMES,
    ControlError,
    Controls,
    render_directive,
    resolve,
    strip_directives,
)
from tests.mock_provider.wire import FORMATS, chat_request, reply_text, stream_pieces

# Arbitrary text around a directive (that is not itself a directive).
surrounding = st.text(max_size=40).filter(lambda text: "[[mock" not in text)
values = st.dictionaries(st.sampled_from(sorted(CONTROL_NAMES)), st.text(max_size=20), max_size=4)


@given(before=surrounding, after=surrounding, pairs=values)
def test_directive_round_trips_and_is_stripped(
    before: str, after: str, pairs: dict[str, str]
) -> None:
    found: list[tuple[str, str]] = []
    assert strip_directives(before + render_directive(pairs) + after, found) == before + after
    assert found == list(pairs.items())


@given(before=surrounding, middle=surrounding, after=surrounding)
def test_several_directives_later_wins(before: str, middle: str, after: str) -> None:
    found: list[tuple[str, str]] = []
    text = f"{before}[[mock chunks=2 echo_system]]{middle}[[mock\nchunks='3']]{after}"
    assert strip_directives(text, found) == before + middle + after
    controls = resolve(Controls.defaults(MockConfig()), found, [])
    assert controls.chunks == 3
    assert controls.echo_system is True


def test_bare_quoted_and_flag_values() -> None:
    found: list[tuple[str, str]] = []
    text = """a[[mock Latency-MS=5 reply='it\\'s "ok"' echo_system stall_ms=]]b"""
    assert strip_directives(text, found) == "ab"
    assert found == [
        ("latency_ms", "5"),
        ("reply", 'it\'s "ok"'),
        ("echo_system", "1"),
        ("stall_ms", ""),
    ]


@pytest.mark.parametrize(
    "text", ["[[mock chunks=3", "[[mock reply='x]]", "[[mock =3]]", "[[mock a b"]
)
def test_malformed_directives_raise(text: str) -> None:
    with pytest.raises(ControlError):
        strip_directives(text, [])


def test_resolve_defaults_and_precedence() -> None:
    defaults = Controls.defaults(MockConfig(default_chunks=9, default_stall_ms=7))
    assert resolve(defaults, [], []) is defaults
    assert defaults.chunks == 9
    assert defaults.stall_ms == 7
    resolved = resolve(defaults, [("chunks", "2"), ("status", "503")], [("chunks", "4")])
    assert (resolved.chunks, resolved.status) == (4, 503)


@settings(max_examples=30, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    before=surrounding,
    after=surrounding,
    chunks=st.integers(min_value=1, max_value=8),
)
def test_directive_controls_the_stream_and_leaves_the_reply(
    mock_http: httpx.Client, fmt: str, before: str, after: str, chunks: int
) -> None:
    path, body = chat_request(fmt, f"{before}[[mock chunks={chunks}]]{after}", stream=True)
    with mock_http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        pieces = list(stream_pieces(fmt, response))
    assert len(pieces) == chunks
    assert "".join(pieces) == "Mock reply to: " + (before + after).strip()[:200]


@settings(max_examples=20, deadline=None)
@given(fmt=st.sampled_from(FORMATS), reply=st.text(max_size=60), before=surrounding)
def test_any_reply_text_round_trips(
    mock_http: httpx.Client, fmt: str, reply: str, before: str
) -> None:
    path, body = chat_request(fmt, before + render_directive({"reply": reply}))
    assert reply_text(fmt, mock_http.post(path, json=body).json()) == reply
