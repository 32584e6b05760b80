"""The text fields of one streamed OpenAI answer, each read by its own scanner.

A chunk's delta may carry text in `content`, `refusal`, the reasoning fields some
OpenAI-compatible servers send, each tool call's `function.arguments` (keyed by the call's
`index`) and the legacy `function_call.arguments`. Each field is its own text: a scanner per
field, the arguments read through `JsonTextScanner` (JSON text, escapes decoded). A leak in
any field stops the whole answer: the content scanner is blocked, and the SSE filter reads
that one flag. A tool call's held arguments go out when the next call starts (clients may
take a call as complete then) or when the answer ends.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.leak_guard.json_text import JsonTextScanner
from gateway.leak_guard.openai_completion import PLAIN_TEXT_FIELDS
from gateway.leak_guard.stream_scanner import StreamScanner

_TOOL_CALLS = "tool_calls"
_FUNCTION_CALL = "function_call"
Field = StreamScanner | JsonTextScanner


def has_text(delta: dict[str, Any]) -> bool:
    """Whether a delta carries any text the guard reads."""
    for name in PLAIN_TEXT_FIELDS:
        text = delta.get(name)
        if isinstance(text, str) and text:
            return True
    calls = delta.get(_TOOL_CALLS)
    if isinstance(calls, list) and any(_arguments(call, "function") for call in calls):
        return True
    return bool(_arguments(delta, _FUNCTION_CALL))


def _arguments(holder: Any, key: str) -> Any:
    """The arguments of `holder[key]` (a tool call's function, a delta's legacy function
    call), if it has any."""
    function = holder.get(key) if isinstance(holder, dict) else None
    return function.get("arguments") if isinstance(function, dict) else None


def _joined(text: Any, rest: str) -> str:
    return (text if isinstance(text, str) else "") + rest


class DeltaGuard:
    """Every text field of one answer's deltas behind a scanner; `content` is the one the
    SSE filter's fast path feeds directly."""

    __slots__ = ("_others", "content")

    def __init__(self, content: StreamScanner) -> None:
        self.content = content
        self._others: dict[tuple[str, int], Field] = {}

    @property
    def held(self) -> bool:
        """Whether any field holds text not yet released."""
        if self.content.held:
            return True
        others = self._others  # usually none: no generator for them
        return bool(others) and any(field.held for field in others.values())

    def reads(self, delta: dict[str, Any]) -> bool:
        """Whether the guard must see this delta: it has text, or it may start a tool call
        while an earlier one's arguments are held."""
        if has_text(delta):
            return True
        return _TOOL_CALLS in delta and any(
            name == _TOOL_CALLS and field.held for (name, _), field in self._others.items()
        )

    def guard(self, delta: dict[str, Any]) -> bool:
        """Replace each text of `delta` with what may go out now; True if any changed."""
        changed = False
        for name in PLAIN_TEXT_FIELDS:
            text = delta.get(name)
            if isinstance(text, str) and text:
                field = self.content if name == "content" else self._field(name, 0)
                released = field.feed(text)
                if released != text:
                    delta[name] = released
                    changed = True
        calls = delta.get(_TOOL_CALLS)
        if isinstance(calls, list) and calls:
            changed |= self._tool_calls(delta, calls)
        if _arguments(delta, _FUNCTION_CALL):
            function = delta[_FUNCTION_CALL]
            changed |= self._feed_arguments(function, self._field(_FUNCTION_CALL, 0))
        self._stop_on_leak()
        return changed

    def finish_into(self, delta: dict[str, Any]) -> bool:
        """The answer is over: each field's held rest goes into `delta`; True if any did."""
        added = False
        rest = self.content.finish()
        if rest:
            delta["content"] = _joined(delta.get("content"), rest)
            added = True
        for (name, index), field in self._others.items():
            rest = field.finish()
            if not rest:
                continue
            added = True
            if name == _TOOL_CALLS:
                _append_arguments(delta, index, rest)
            elif name == _FUNCTION_CALL:
                function = delta.get(_FUNCTION_CALL)
                if not isinstance(function, dict):
                    function = delta[_FUNCTION_CALL] = {}
                function["arguments"] = _joined(function.get("arguments"), rest)
            else:
                delta[name] = _joined(delta.get(name), rest)
        self._stop_on_leak()
        return added

    def _field(self, name: str, index: int) -> Field:
        field = self._others.get((name, index))
        if field is None or field.finished:
            scanner = self.content.sibling()
            field = scanner if name in PLAIN_TEXT_FIELDS else JsonTextScanner(scanner)
            self._others[name, index] = field
        return field

    def _tool_calls(self, delta: dict[str, Any], calls: list[Any]) -> bool:
        changed = False
        kept: list[Any] = []
        for position, call in enumerate(calls):
            index = call.get("index") if isinstance(call, dict) else None
            index = index if isinstance(index, int) else position
            if (_TOOL_CALLS, index) not in self._others:
                changed |= self._flush_calls(kept)  # a new call: the earlier ones are complete
            if not _arguments(call, "function"):
                kept.append(call)
                continue
            if self._feed_arguments(call["function"], self._field(_TOOL_CALLS, index)):
                changed = True
                if not call["function"]["arguments"] and _only_arguments(call):
                    continue  # nothing of this piece may go out yet
            kept.append(call)
        if changed:
            if kept:
                delta[_TOOL_CALLS] = kept
            else:
                del delta[_TOOL_CALLS]
        return changed

    def _flush_calls(self, kept: list[Any]) -> bool:
        flushed = False
        for (name, index), field in self._others.items():
            if name == _TOOL_CALLS and not field.finished:
                rest = field.finish()
                if rest:
                    kept.append({"index": index, "function": {"arguments": rest}})
                    flushed = True
        return flushed

    def _feed_arguments(self, function: dict[str, Any], field: Field) -> bool:
        arguments = function["arguments"]
        changed = False
        if not isinstance(arguments, str):  # an object where OpenAI sends a string
            arguments = orjson.dumps(arguments).decode()
            changed = True
        released = field.feed(arguments)
        if changed or released != arguments:
            function["arguments"] = released
            return True
        return False

    def _stop_on_leak(self) -> None:
        others = self._others
        if others and not self.content.leaked and any(f.leaked for f in others.values()):
            self.content.block()


def _only_arguments(call: dict[str, Any]) -> bool:
    """A tool call piece with nothing but its index and arguments (no id, name, type)."""
    return call.keys() <= {"index", "function"} and call["function"].keys() == {"arguments"}


def _append_arguments(delta: dict[str, Any], index: int, rest: str) -> None:
    calls = delta.get(_TOOL_CALLS)
    if not isinstance(calls, list):
        calls = delta[_TOOL_CALLS] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and call.get("index") == index:
            function["arguments"] = _joined(function.get("arguments"), rest)
            return
    calls.append({"index": index, "function": {"arguments": rest}})
