"""Per-request test controls.

A control comes from a request header ``x-mock-<name>: <value>`` or from a directive
``[[mock name=value name="quoted value" flag]]`` anywhere inside a message text (through the
gateway only the message text reaches the mock). Directives are stripped from every text the
mock echoes. Header values win over directive values; a later directive wins over an earlier one.
Names are case-insensitive and ``-`` equals ``_`` (``x-mock-latency-ms`` = ``latency_ms``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from mock_provider.config import MockConfig

HEADER_PREFIX = b"x-mock-"
DIRECTIVE_MARK = "[[mock"

_MAX_MS = 24 * 3_600_000
_MAX_COUNT = 1_000_000


class ControlError(ValueError):
    """A control or directive that cannot be parsed; answered with a 400 in the provider's shape."""


@dataclass(frozen=True, slots=True)
class Controls:
    """The resolved controls of one request."""

    latency_ms: int = 0
    chunks: int = 5
    chunk_delay_ms: int = 0
    status: int | None = None
    retry_after: int | None = None
    break_after: int | None = None
    stall_after: int | None = None
    stall_ms: int = 3_600_000
    echo_system: bool = False
    reply: str | None = None
    tool_call: str | None = None
    tool_arguments: str | None = None
    refusal: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache: bool = False  # report a repeated prompt prefix as cached (prompt_cache.py)

    @classmethod
    def defaults(cls, config: MockConfig) -> Controls:
        return cls(
            chunks=config.default_chunks,
            stall_ms=config.default_stall_ms,
            cache=config.prompt_cache,
        )


def _int_parser(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ControlError(f"mock control {name} must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ControlError(f"mock control {name} must be in [{low}, {high}], got {value}")
        return value

    return parse


def _flag_parser(name: str) -> Callable[[str], bool]:
    def parse(raw: str) -> bool:
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ControlError(f"mock control {name} must be 1/true/0/false, got {raw!r}")

    return parse


def _parse_text(raw: str) -> str:
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "latency_ms": _int_parser("latency_ms", 0, _MAX_MS),
    "chunks": _int_parser("chunks", 1, _MAX_COUNT),
    "chunk_delay_ms": _int_parser("chunk_delay_ms", 0, _MAX_MS),
    "status": _int_parser("status", 400, 599),
    "retry_after": _int_parser("retry_after", 0, 86_400),
    "break_after": _int_parser("break_after", 0, _MAX_COUNT),
    "stall_after": _int_parser("stall_after", 0, _MAX_COUNT),
    "stall_ms": _int_parser("stall_ms", 0, _MAX_MS),
    "echo_system": _flag_parser("echo_system"),
    "reply": _parse_text,
    "tool_call": _parse_text,
    "tool_arguments": _parse_text,
    "refusal": _flag_parser("refusal"),
    "prompt_tokens": _int_parser("prompt_tokens", 0, 1_000_000_000),
    "completion_tokens": _int_parser("completion_tokens", 0, 1_000_000_000),
    "cache": _flag_parser("cache"),
}
CONTROL_NAMES = frozenset(_PARSERS)

# One `name`, `name=bare`, `name="quoted \" value"` or `name='quoted'`.
_VALUE = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s"'\]]*"""
_PAIR = rf"""[A-Za-z_][\w-]*(?:=(?:{_VALUE}))?"""
_DIRECTIVE = re.compile(rf"\[\[mock((?:\s+{_PAIR})*)\s*\]\]", re.DOTALL)
_PAIR_CAPTURE = re.compile(rf"\s+([A-Za-z_][\w-]*)(?:=({_VALUE}))?", re.DOTALL)
_DIRECTIVE_START = re.compile(r"\[\[mock(?=[\s\]])")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def normalize_name(name: str) -> str:
    return name.lower().replace("-", "_")


def _unquote(raw: str | None) -> str:
    if raw is None:  # a bare flag
        return "1"
    if raw[:1] in ('"', "'"):
        return _ESCAPE.sub(r"\1", raw[1:-1])
    return raw


def strip_directives(text: str, found: list[tuple[str, str]]) -> str:
    """Remove every ``[[mock ...]]`` directive from ``text``, appending its (name, value) pairs
    to ``found``. Raise ControlError for a directive that does not parse."""
    if DIRECTIVE_MARK not in text:
        return text
    kept: list[str] = []
    position = 0
    for match in _DIRECTIVE.finditer(text):
        kept.append(text[position : match.start()])
        for pair in _PAIR_CAPTURE.finditer(match.group(1)):
            found.append((normalize_name(pair.group(1)), _unquote(pair.group(2))))
        position = match.end()
    kept.append(text[position:])
    for piece in kept:
        bad = _DIRECTIVE_START.search(piece)
        if bad is not None:
            snippet = piece[bad.start() : bad.start() + 60]
            raise ControlError(f"malformed mock directive near {snippet!r}")
    return "".join(kept)


def resolve(
    defaults: Controls,
    directive_pairs: Iterable[tuple[str, str]],
    header_pairs: Iterable[tuple[str, str]],
) -> Controls:
    """Apply directive values, then header values, over ``defaults``."""
    values: dict[str, Any] = {}
    for pairs in (directive_pairs, header_pairs):
        for name, raw in pairs:
            parser = _PARSERS.get(name)
            if parser is None:
                known = ", ".join(sorted(_PARSERS))
                raise ControlError(f"unknown mock control {name!r} (known: {known})")
            values[name] = parser(raw)
    return replace(defaults, **values) if values else defaults


def render_directive(values: dict[str, str]) -> str:
    """The directive text that sets ``values`` (quoted, so any value round-trips)."""
    parts = [DIRECTIVE_MARK]
    for name, value in values.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'{name}="{escaped}"')
    return " ".join(parts) + "]]"
