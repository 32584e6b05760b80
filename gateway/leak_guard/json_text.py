"""Tool-call arguments are JSON text: the guard reads them with their escapes decoded.

A model that puts the prompt into a tool call's arguments writes it as a JSON string, so
line breaks arrive as `\\n`, quotes as `\\"` and any character may be `\\uXXXX`. Read raw,
"one\\ntwo" would be the words "one" and "ntwo" and `\\u0065` no letter at all; decoded, the
words are the prompt's. Nothing else of JSON matters here: braces, quotes, colons and
commas are separators to the normaliser, keys and values are both read as text. A
backslash outside a string is not JSON, so escapes are decoded wherever they stand.

`decode_escapes` decodes a whole text (a non-streaming answer). `JsonTextScanner` guards one
streamed JSON text (one tool call's arguments): it feeds the decoded text to a
`StreamScanner` and releases the raw text up to the point the scanner released, byte for
byte as the model wrote it; an escape cut by a chunk boundary waits for its end. Lone
surrogates decode to nothing, as the normaliser deletes format characters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from gateway.leak_guard.stream_scanner import StreamScanner

_SIMPLE: Final = {
    '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
}  # fmt: skip
_HEX = "[0-9a-fA-F]"
_HIGH = f"[dD][89abAB]{_HEX}{{2}}"
_LOW = f"[dD][c-fC-F]{_HEX}{{2}}"
# Complete escapes; anything else after a backslash is kept as written.
_ESCAPE = re.compile(rf"\\(?:u({_HIGH})\\u({_LOW})|u({_HEX}{{4}})|(.))", re.DOTALL)
# The same, plus (group "partial") an escape cut short by the end of the text so far.
_STREAM_ESCAPE = re.compile(
    rf"\\(?:u({_HIGH})\\u({_LOW})"
    rf"|(?P<partial>u{_HIGH}(?:\\(?:u{_HEX}{{0,3}})?)?\Z|u{_HEX}{{0,3}}\Z|\Z)"
    rf"|u({_HEX}{{4}})|(.))",
    re.DOTALL,
)


def _decoded(high: str | None, low: str | None, code: str | None, char: str | None) -> str:
    if high is not None and low is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if code is not None:
        value = int(code, 16)
        return "" if 0xD800 <= value <= 0xDFFF else chr(value)
    if char is not None and char in _SIMPLE:
        return _SIMPLE[char]
    return "\\" + (char or "")


def _replace(match: re.Match[str]) -> str:
    return _decoded(*match.groups())


def decode_escapes(raw: str) -> str:
    """The text with every JSON escape decoded (unknown or cut escapes kept as written)."""
    return _ESCAPE.sub(_replace, raw) if "\\" in raw else raw


class JsonTextScanner:
    """One streamed JSON text guarded by a `StreamScanner` over its decoded form. `feed`
    raw pieces and send what it returns; `finish` at the end. Everything returned, joined,
    is exactly the raw input when the text is clean; after a leak only ""."""

    __slots__ = ("_escapes", "_pending", "_raw", "_scanner")

    def __init__(self, scanner: StreamScanner) -> None:
        self._scanner = scanner
        self._raw = ""  # raw text received and not released (the pending escape included)
        self._pending = ""  # an escape cut by the end of the last piece
        # Per escape not yet released: (its offset in the scanner's held text, raw length
        # minus decoded length).
        self._escapes: list[tuple[int, int]] = []

    @property
    def leaked(self) -> bool:
        return self._scanner.leaked

    @property
    def finished(self) -> bool:
        return self._scanner.finished

    @property
    def held(self) -> int:
        return len(self._raw)

    def feed(self, piece: str) -> str:
        scanner = self._scanner
        if scanner.leaked or scanner.finished or not piece:
            return ""
        self._raw += piece
        text = self._pending + piece if self._pending else piece
        if "\\" in text:
            text = self._decode(text, scanner.held)
        else:
            self._pending = ""
        released = scanner.feed(text)
        if scanner.leaked:
            self._raw = ""
            return ""
        return self._release(len(released)) if released else ""

    def finish(self) -> str:
        scanner = self._scanner
        if scanner.finished:
            return ""
        if self._pending:
            scanner.feed(decode_escapes(self._pending))
            self._pending = ""
        scanner.finish()
        out, self._raw = ("" if scanner.leaked else self._raw), ""
        self._escapes.clear()
        return out

    def _decode(self, text: str, offset: int) -> str:
        """The decoded text, recording each escape at `offset` + its decoded position and
        keeping an escape cut short at the end for the next piece."""
        parts: list[str] = []
        length = 0
        position = 0
        self._pending = ""
        for match in _STREAM_ESCAPE.finditer(text):
            plain = text[position : match.start()]
            if match.group("partial") is not None:
                self._pending = text[match.start() :]
                parts.append(plain)
                return "".join(parts)
            high, low, _partial, code, char = match.groups()
            decoded = _decoded(high, low, code, char)
            parts += (plain, decoded)
            length += len(plain)
            extra = match.end() - match.start() - len(decoded)
            if extra:
                self._escapes.append((offset + length, extra))
            length += len(decoded)
            position = match.end()
        parts.append(text[position:])
        return "".join(parts)

    def _release(self, count: int) -> str:
        """Release the raw text of the first `count` held decoded characters."""
        escapes = self._escapes
        cut = count
        done = 0
        for at, extra in escapes:
            if at >= count:
                break
            cut += extra
            done += 1
        if escapes:
            self._escapes = [(at - count, extra) for at, extra in escapes[done:]]
        out, self._raw = self._raw[:cut], self._raw[cut:]
        return out
