"""Server-sent events (`text/event-stream`): the one reader of them, and their writer.

Every piece of code that reads SSE bytes reads them here: the provider adapters (the events
of Anthropic and Gemini streams, the tail of an OpenAI one), the leak guard's stream filter,
the usage filter, the mock provider's tests and the load harness.

The rules (WHATWG's, narrowed to what a provider sends):

- Lines end at `\\n`; a trailing `\\r` is dropped. Nothing else ends a line: U+2028, U+0085
  and friends may sit inside JSON strings, so `str.splitlines` must never touch a stream.
- A blank line (LF or CRLF) ends an event. `field: value` lines (one optional space after
  the colon); a line starting with `:` is a comment (keep-alive). The `data` lines of an
  event are joined by `\\n`; an event without a `data` field is not dispatched. `id` and
  `retry` are ignored: no provider resumes a stream.
- Network reads cut a stream anywhere (inside a line, between `\\r` and `\\n`, inside a
  UTF-8 sequence): `EventFramer` keeps the unfinished event and hands out only whole ones.

Two levels, for the two kinds of readers: `EventFramer` cuts a byte stream into raw events
(the exact bytes of each, blank line included), for the filters that pass most events on
byte for byte; `SseParser` turns those into `SseEvent(event, data)`, for the readers that
only need the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

DONE = b"data: [DONE]\n\n"
# One SSE line longer than this is not a model's answer: the stream is refused, not buffered.
MAX_LINE_BYTES = 16 * 1024 * 1024


class SseEvent(NamedTuple):
    event: str  # the `event:` field, "message" when absent
    data: bytes  # the `data:` lines joined by "\n"


class SseError(ValueError):
    """The byte stream is not an event stream we can read."""


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One event as it goes on the wire (`data` must be one line, as JSON is)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def _is_blank_at(buf: bytes, line: int, end: int) -> bool:
    """Whether the line buf[line:end] (end at its "\\n") is blank: LF or CRLF."""
    return end == line or (end == line + 1 and buf[line] == 13)


def splits_on_lf_lf(data: bytes) -> bool:
    """Whether `data.split(b"\\n\\n")` cuts it exactly where the line rules do: no CR, no
    blank line of its own (three LFs, or an LF first). What providers send, so the common
    case is one C-level split, not a Python loop per line."""
    # `find`, not `in`: `bytes in bytes` first tries the needle as an int (a TypeError each).
    return data.find(b"\r") < 0 and data.find(b"\n\n\n") < 0 and data[:1] != b"\n"


def split_events(whole: bytes) -> list[bytes]:
    """A byte string's raw events, each with the blank line that ends it; a blank line
    between events is a piece of its own; the unfinished rest (if any) is the last piece."""
    if splits_on_lf_lf(whole):
        *events, rest = whole.split(b"\n\n")
        events = [event + b"\n\n" for event in events]
        if rest:
            events.append(rest)
        return events
    events = []
    start = line = 0
    while (end := whole.find(b"\n", line)) >= 0:
        if _is_blank_at(whole, line, end):
            events.append(whole[start : end + 1])
            start = end + 1
        line = end + 1
    if start < len(whole):
        events.append(whole[start:])
    return events


def whole_events_end(data: bytes) -> int:
    """Where the whole events of `data` (which starts where an event starts) end: just after
    its last blank line (0 if none). The cut `split_events` makes, found in a few searches."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\n\r\n") if data.find(b"\r") >= 0 else -1  # memchr first: most have no CR
    end = max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)
    return end or _leading_blank_line(data)


def _boundary_before(data: bytes, end: int, *, crlf_too: bool) -> int:
    """Where the event that ends at `end` (just after its blank line) starts: after the
    blank line before it, or 0. (`crlf_too`: `data` holds a CR; else the search for CRLF
    blank lines, which would read back to the start each time, is skipped.)"""
    lf = data.rfind(b"\n\n", 0, end - 1)
    crlf = data.rfind(b"\n\r\n", 0, end - 1) if crlf_too else -1
    start = max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)
    if start == 0:
        first = _leading_blank_line(data)
        if first < end:
            start = first
    return start


def _leading_blank_line(data: bytes) -> int:
    """The length of the blank line `data` starts with (0 if none)."""
    return 1 if data[:1] == b"\n" else 2 if data[:2] == b"\r\n" else 0


def events_from_end(data: bytes) -> Iterator[bytes]:
    """`split_events(data)` last first, found lazily from the end: a reader of a stream's
    tail that wants its last events stops after reading them."""
    end = whole_events_end(data)
    if end < len(data):
        yield data[end:]
    crlf_too = data.find(b"\r") >= 0
    while end > 0:
        start = _boundary_before(data, end, crlf_too=crlf_too)
        yield data[start:end]
        end = start


class EventFramer:
    """Feed it network reads; get back the raw events they complete, in order, each exactly
    as it arrived (its blank line included), so a filter can pass it on untouched."""

    __slots__ = ("_buf", "_line", "_max_line")

    def __init__(self, *, max_line_bytes: int | None = None) -> None:
        self._buf = b""  # the unfinished event
        self._line = 0  # where its unfinished line starts (the lines before are whole)
        self._max_line = max_line_bytes  # None: a relay that holds nothing but one event

    @property
    def pending(self) -> int:
        """Bytes received that belong to no whole event yet."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if splits_on_lf_lf(buf):
            *events, rest = buf.split(b"\n\n")
            self._buf = rest
            self._line = rest.rfind(b"\n") + 1
            self._check_line()
            return [event + b"\n\n" for event in events]
        events = []
        start = 0  # the current event
        line = self._line  # the next line of it
        while (end := buf.find(b"\n", line)) >= 0:
            if _is_blank_at(buf, line, end):
                events.append(buf[start : end + 1])
                start = end + 1
            line = end + 1
        self._buf = buf[start:]
        self._line = line - start
        self._check_line()
        return events

    def feed_bare(self, chunk: bytes) -> list[bytes] | None:
        """`feed` for the common case, each event without its closing `\\n\\n` (so a filter
        that rewrites most events copies none): when the bytes so far are one-line events
        each closed by a blank line, LF only (what providers send). Otherwise None, nothing
        consumed: `feed`."""
        buf = self._buf + chunk if self._buf else chunk
        if buf.find(b"\r") >= 0:
            return None
        # One-line events, every other line blank (the shape of every provider's chunks),
        # read by one split on the single byte LF: CPython's searches for LF LF, or LF LF LF
        # to rule out blank lines of their own, read a few KB several times slower (short
        # needles of one repeated byte). Anything else is `feed`'s (multi-line events, a
        # read cut after an event's line and before its blank line).
        lines = buf.split(b"\n")
        if not len(lines) & 1 or any(lines[1::2]):
            return None
        events = lines[:-1:2]
        if not all(events):  # an empty line where an event should be: a blank line of its own
            return None
        self._buf = lines[-1]
        self._line = 0
        self._check_line()
        return events

    def _check_line(self) -> None:
        if self._max_line is not None and len(self._buf) - self._line > self._max_line:
            raise SseError("an event stream line exceeds the size limit")

    def feed_whole(self, chunk: bytes) -> bytes:
        """Like `feed`, the whole events as one byte string: for a reader that looks into
        events only now and then (two searches per read instead of one per line)."""
        buf = self._buf + chunk if self._buf else chunk
        end = whole_events_end(buf)
        self._buf = buf[end:]
        self._line = 0  # safe: a later `feed` reads the kept lines again
        return buf[:end]

    def flush(self) -> bytes:
        """At the end of the stream: the bytes of an event its blank line never closed."""
        rest, self._buf, self._line = self._buf, b"", 0
        return rest


def event_data(raw: bytes) -> bytes | None:
    """The data of one raw event (its `data` lines joined by LF), or None if it has none
    (a comment, a keep-alive, a blank line)."""
    if raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2:
        return raw[6:-2]  # the usual one-line "data: ...\n\n"
    event = parse_event(raw)
    return None if event is None else event.data


def data_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object an event's data holds (how every chunk is written); None for
    `[DONE]`, broken JSON or any other JSON value."""
    if not data.startswith(b"{"):
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_event(raw: bytes, *, whole_lines_only: bool = False) -> SseEvent | None:
    """The event a raw event dispatches, or None if it has no `data` field. With
    `whole_lines_only`, a last line without its `\\n` (cut by the end of the stream) is
    ignored."""
    name = ""
    data: list[bytes] | None = None
    lines = raw.split(b"\n")
    if whole_lines_only:
        lines.pop()  # what follows the last "\n": nothing, or a line the stream cut
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]  # noqa: PLW2901
        if not line or line[0] == 0x3A:  # blank, or ":" a comment
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            if data is None:
                data = [value]
            else:
                data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if data is None:
        return None
    return SseEvent(name or "message", b"\n".join(data))


class SseParser:
    """Feed it network reads; get back the events they complete, in order."""

    __slots__ = ("_framer",)

    def __init__(self) -> None:
        self._framer = EventFramer(max_line_bytes=MAX_LINE_BYTES)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        return [event for raw in self._framer.feed(chunk) if (event := parse_event(raw))]

    def flush(self) -> list[SseEvent]:
        """At the end of the stream: the last event, if its data lines all arrived whole but
        the closing blank line did not. A line cut short by the end of stream is dropped."""
        event = parse_event(self._framer.flush(), whole_lines_only=True)
        return [event] if event is not None else []


def events_of(body: bytes) -> list[SseEvent]:
    """Every event of a whole stream body (a test's or the load harness's read of one)."""
    parser = SseParser()
    return parser.feed(body) + parser.flush()
