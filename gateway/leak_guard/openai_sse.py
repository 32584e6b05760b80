"""The stream scanner applied to a relayed OpenAI chat.completion.chunk SSE stream."""

from __future__ import annotations

from typing import Any

import orjson

from common.sse import EventFramer, data_object, event_data
from gateway.leak_guard.openai_completion import WITHHELD_FINISH_REASON, WITHHELD_NOTICE
from gateway.leak_guard.openai_delta import DeltaGuard
from gateway.leak_guard.stream_scanner import StreamScanner

_CONTENT_DELTA = b'"delta":{"content":"'


def _may_carry_text(data: bytes) -> bool:
    """Whether an event may carry text the guard reads: one of its keys (an escaped key
    could spell one, so any escape sends the event to the parser too). Searched with
    `find`: `bytes in bytes` first tries the needle as an int and pays a TypeError."""
    find = data.find
    return (
        find(b'"content"') >= 0
        or find(b'"arguments"') >= 0
        or find(b'"refusal"') >= 0
        or find(b'"reasoning') >= 0
        or find(b"\\u") >= 0
    )


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunk(
    shape: bytes, delta: dict[str, Any], finish_reason: str | None, *, keep_usage: bool
) -> bytes:
    """A chat.completion.chunk shaped like `shape` (same id, model, created, ...)."""
    obj = data_object(shape) or {"object": "chat.completion.chunk"}
    choices = obj.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    index = first.get("index", 0) if isinstance(first, dict) else 0
    obj["choices"] = [
        {
            "index": index,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
    ]
    if not keep_usage and obj.get("usage") is not None:
        obj["usage"] = None
    return _sse(obj)


class SseLeakFilter:
    """The stream scanner applied to a relayed OpenAI chat.completion.chunk SSE stream.

    Events are cut by `common.sse.EventFramer` (on blank lines, LF or CRLF, never on other
    line breaks: U+2028 and the like travel raw inside JSON strings). Every text field of a
    delta is read (content, refusal, reasoning, tool call and function call arguments:
    `openai_delta`). Events
    without text (role, usage, comments, [DONE]) pass through byte for byte, as do events
    whose text the scanners release unchanged. Otherwise an event is re-emitted with the
    released text and every other byte of it kept (id, model, created, a tool call's id and
    name...); one with nothing left to send is held back, its text following in a later
    event. At the end of the answer (a finish_reason, the usage chunk, [DONE] or `finish`)
    the rest of every field is released first.

    On a leak no more content goes out: exactly one chunk says the answer was withheld,
    with finish_reason "content_filter"; later the usage chunk (choices == []), comments and
    [DONE] still pass, every other event is dropped.
    """

    __slots__ = (
        "_close",
        "_fields",
        "_framer",
        "_head",
        "_notice",
        "_open",
        "_scanner",
        "_shape",
        "_tail",
        "_withheld",
    )

    def __init__(self, scanner: StreamScanner, *, notice: str = WITHHELD_NOTICE) -> None:
        self._scanner = scanner  # the content's; blocked when any field leaks
        self._fields = DeltaGuard(scanner)
        self._notice = notice
        self._framer = EventFramer()
        # The last content chunk ("data: " and its JSON), to shape the chunks we write.
        self._shape = b"data: "
        self._withheld = False
        # The last plain content chunk cut around its text: `data: {..."content":"` and
        # `"}...}`. The next chunks of a stream differ only in their text, so a chunk that
        # starts and ends with these is read with two compares instead of five searches.
        self._head = b""
        self._tail = b""
        # The same cut around the JSON string, for writing a rewritten text between them.
        self._open = b""
        self._close = b""

    @property
    def leaked(self) -> bool:
        return self._scanner.leaked

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        bare_events = self._framer.feed_bare(data)
        if bare_events is None:  # CR, blank lines of their own, multi-line events: in general
            for raw in self._framer.feed(data):
                self._event(raw, out)
            return b"".join(out)
        scanner = self._scanner
        for bare in bare_events:
            # The same shape as the last plain content chunk (`_head` + text + `_tail`):
            # `_plain_content`'s checks hold when its text has no quote, backslash or line
            # break. (removeprefix/removesuffix: one argument, no argument parsing, unlike
            # startswith; `bytes in bytes` first tries the needle as an int and pays a
            # TypeError, so the text is checked as a str.) An empty `_head` matches nothing.
            after_head = bare.removeprefix(self._head)
            text = after_head.removesuffix(self._tail)
            if after_head is not bare and text is not after_head and scanner.live:
                try:
                    content = text.decode()
                except UnicodeDecodeError:
                    content = ""
                if content and '"' not in content and "\\" not in content and "\n" not in content:
                    self._shape = bare
                    released = scanner.feed(content)  # `_released`, inline: the hot loop
                    if released == content:
                        out += (bare, b"\n\n")
                    elif not scanner.live:  # it leaked
                        self._withhold(bare[6:], out)
                    elif released:
                        out += (self._open, orjson.dumps(released), self._close)
                    continue
            # The usual `data: ...` event (one line: `feed_bare` hands out no other), read in
            # place; anything else whole.
            if bare.startswith(b"data: "):
                if not self._plain_content(bare, None, out):
                    self._general(bare + b"\n\n", bare[6:], out)
            else:
                self._event(bare + b"\n\n", out)
        return b"".join(out)

    def finish(self) -> bytes:
        """At the end of the byte stream: a last event without its blank line, and the
        held text if the answer never said it was finished."""
        out: list[bytes] = []
        rest = self._framer.flush()
        if rest.strip():
            self._event(rest, out)
        self._end_of_answer(None, out)
        return b"".join(out)

    def _event(self, raw: bytes, out: list[bytes]) -> None:
        data = event_data(raw)
        if data is None:
            out.append(raw)  # a comment, a keep-alive, a blank line between events
            return
        if data.find(b"\n") >= 0 or not self._plain_content(b"data: " + data, raw, out):
            self._general(raw, data, out)

    def _general(self, raw: bytes, data: bytes, out: list[bytes]) -> None:
        """Any event with data, as JSON (the plain content chunk is `_plain_content`'s)."""
        scanner = self._scanner
        if not scanner.leaked and not _may_carry_text(data) and not self._fields.held:
            out.append(raw)  # nothing held, nothing to read
            return
        if data == b"[DONE]":
            self._end_of_answer(None, out)
            out.append(raw)
            return
        obj = data_object(data)
        if obj is None and _may_carry_text(data):
            return  # text the filter cannot read (broken JSON or UTF-8): never unvetted
        choices = obj.get("choices") if obj is not None else None
        if obj is not None and isinstance(choices, list) and choices:
            if isinstance(choices[0], dict):
                self._choice(raw, data, obj, choices[0], out)
            elif not scanner.leaked:
                out.append(raw)
            return
        if obj is not None and obj.get("usage"):
            self._end_of_answer(None, out)  # the usage chunk closes the answer
        out.append(raw)

    def _plain_content(self, event: bytes, raw: bytes | None, out: list[bytes]) -> bool:
        """The fast path for the common content chunk, `data: {..."delta":{"content":"..."}
        ...}` on one line (`event`, without its closing blank line), with no escapes and no
        finish_reason: read and rewrite the string in place, no JSON parse. Released whole,
        it goes out as `raw` (as it came), or `event` and a blank line. False when the chunk
        is not that simple (the general path takes it)."""
        at = event.find(_CONTENT_DELTA)
        if at < 0:
            return False
        start = at + len(_CONTENT_DELTA)
        end = event.find(b'"', start)
        scanner = self._scanner
        if (
            not scanner.live
            or not event.startswith(b'"}', end)
            or event.find(b"\\", start, end) >= 0
            or event.find(b'"finish_reason":null', end) < 0
        ):
            return False
        try:
            content = event[start:end].decode()
        except UnicodeDecodeError:
            return False
        if not content:
            return False
        self._shape = event
        self._head = event[:start]
        self._tail = event[end:]
        self._open = event[: start - 1]
        self._close = event[end + 1 :] + b"\n\n"
        self._released(content, event, raw, out)
        return True

    def _released(self, content: str, event: bytes, raw: bytes | None, out: list[bytes]) -> None:
        """A plain content chunk's text through the scanner; `event` (its `data: ` line, cut
        around the text by `_head` and `_tail`) goes out as `raw`, or rewritten with what was
        released."""
        scanner = self._scanner
        released = scanner.feed(content)
        if not scanner.live:  # it leaked (finished is not reached by feed)
            self._withhold(event[6:], out)
        elif released == content:
            out += (event, b"\n\n") if raw is None else (raw,)
        elif released:
            out += (self._open, orjson.dumps(released), self._close)

    def _choice(
        self,
        raw: bytes,
        data: bytes,
        obj: dict[str, Any],
        choice: dict[str, Any],
        out: list[bytes],
    ) -> None:
        scanner = self._scanner
        delta = choice.get("delta")
        finish_reason = choice.get("finish_reason")
        if not isinstance(delta, dict) or not self._fields.reads(delta):
            if finish_reason is not None and not scanner.leaked:
                self._end_of_answer(data, out)  # the withheld chunk takes its place on a leak
            if not scanner.leaked:
                out.append(raw)
            return
        if scanner.leaked or scanner.finished:
            return  # no text after a leak, or after the answer ended
        self._shape = b"data: " + data
        changed = self._fields.guard(delta)
        if finish_reason is not None:
            changed |= self._fields.finish_into(delta)
        if scanner.leaked:
            self._withhold(data, out)
        elif not changed:
            out.append(raw)
        elif finish_reason is not None or any(
            value is not None and value != "" for value in delta.values()
        ):
            out.append(_sse(obj))
        # else: held; its text goes out with a later event

    def _end_of_answer(self, closing: bytes | None, out: list[bytes]) -> None:
        """The answer is over: release the rest, or withhold it (in place of `closing`,
        the chunk that ended it, when there is one)."""
        rest: dict[str, Any] = {}
        self._fields.finish_into(rest)
        if self._scanner.leaked:
            self._withhold(closing or self._shape[6:], out)
        elif rest:
            out.append(_chunk(self._shape[6:], rest, None, keep_usage=False))

    def _withhold(self, shape: bytes, out: list[bytes]) -> None:
        if self._withheld:
            return
        self._withheld = True
        notice = {"content": self._notice}
        out.append(_chunk(shape, notice, WITHHELD_FINISH_REASON, keep_usage=True))
