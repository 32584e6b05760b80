"""The usage an OpenAI client sees: the call's cost in `usage`, and the stream's usage chunk
only when the client asked for it (gateway/openai_edge.py writes them).

We always ask the provider for usage (metering needs it). An OpenAI client that did not send
`stream_options.include_usage` does not expect the final chunk with `choices: []`; the naive
`for c in stream: c.choices[0]` loop crashes on it. So `UsageChunks` drops that chunk unless
it was asked for, and otherwise adds the cost to it.

The cost (`CallCost`) is what this call takes from the developer's quota: `cost_units` and
their value in USD as `cost` (OpenRouter's field name), both 0 for a free trial call or an
answer that is not billed (withheld by the leak guard).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from decimal import Decimal
from typing import Any

import orjson

from common.sse import EventFramer, data_object, event_data, split_events
from common.validation import money_text
from gateway.call_record import hot_record

# A usage object, not OpenAI's `"usage":null` that every chunk of such a stream carries.
_USAGE_OBJECT = (b'"usage":{', b'"usage": {')


@hot_record
class CallCost:
    units: int
    usd: Decimal
    _billed: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # An exact decimal in the JSON, never a float's rounding of it.
        fields = {"cost": orjson.Fragment(money_text(self.usd)), "cost_units": self.units}
        object.__setattr__(self, "_billed", fields)

    @classmethod
    def of(cls, units: int, unit_price: Decimal) -> CallCost:
        return cls(units, units * unit_price)

    def usage_fields(self, *, billed: bool = True) -> Mapping[str, Any]:
        """The fields to add to the answer's `usage` (made once per cost: read, never
        change them)."""
        return self._billed if billed else _UNBILLED


_UNBILLED: Mapping[str, Any] = {"cost": orjson.Fragment(money_text(Decimal(0))), "cost_units": 0}


class CallCosts:
    """`CallCost.of` at one unit price, each unit count's made once: a process sees few
    (the agents' prices), and the Decimal arithmetic and formatting were ~3% of a JSON
    call's CPU. Emptied when full, so no flood of distinct counts grows it."""

    __slots__ = ("_known", "_unit_price")

    _KEPT = 1024

    def __init__(self, unit_price: Decimal) -> None:
        self._unit_price = unit_price
        self._known: dict[int, CallCost] = {}

    def of(self, units: int) -> CallCost:
        cost = self._known.get(units)
        if cost is None:
            if len(self._known) >= self._KEPT:
                self._known.clear()
            cost = self._known[units] = CallCost.of(units, self._unit_price)
        return cost


def with_cost(body: bytes, cost: CallCost, *, billed: bool) -> bytes:
    """A chat.completion body with the call's cost added to its `usage`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(data, dict):
        return body
    return orjson.dumps(add_cost(data, cost, billed=billed))


def add_cost(data: dict[str, Any], cost: CallCost, *, billed: bool) -> dict[str, Any]:
    """`with_cost` on the body's JSON object, which it changes in place."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = data["usage"] = {}
    usage.update(cost.usage_fields(billed=billed))
    return data


class UsageChunks:
    """Filters a stream of OpenAI chunk SSE bytes (the bytes the client gets): the usage
    chunk is dropped, or carries the cost when `include_usage`. Holds back only an event cut
    by a network read, until its end arrives. `billed` says, when the usage chunk passes,
    whether the answer is billed (the leak guard may have withheld it)."""

    __slots__ = ("_cost", "_framer", "_include", "billed")

    def __init__(self, *, include_usage: bool, cost: CallCost) -> None:
        self._include = include_usage
        self._cost = cost
        self._framer = EventFramer()
        self.billed = True

    def feed(self, data: bytes) -> bytes:
        # Whole events go out now; the tail of one still arriving waits for its end.
        whole = self._framer.feed_whole(data)
        at = _usage_at(whole, 0)
        return whole if at < 0 else self._rewrite(whole, at)

    def finish(self) -> bytes:
        rest = self._framer.flush()
        at = _usage_at(rest, 0) if rest else -1
        return rest if at < 0 else self._rewrite(rest, at)

    def _rewrite(self, whole: bytes, at: int) -> bytes:
        """`whole` with each event holding a usage object rewritten; the first such key
        is at `at` (each search of a stream's few KB counts: it is searched once)."""
        if whole.find(b"\r") >= 0 or whole[:1] == b"\n":
            return b"".join(self._event(event) for event in split_events(whole))
        # LF only (what providers send): only the events that hold a usage object are looked
        # at. Without CR the blank line before an event is the last LF LF before it, found
        # from just before `done` (a blank line of its own right after the last event cut is
        # skipped too), and the first LF LF after its key ends it.
        out: list[bytes] = []
        done = 0  # whole[:done] is in `out`
        while at >= 0:
            start = whole.rfind(b"\n\n", max(done - 1, 0), at)
            start = done if start < 0 else start + 2
            end = whole.find(b"\n\n", at)
            end = len(whole) if end < 0 else end + 2
            out += (whole[done:start], self._event(whole[start:end]))
            done = end
            at = _usage_at(whole, done)
        out.append(whole[done:])
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        if _usage_at(event, 0) < 0:
            return event
        chunk = _chunk_of(event)
        if chunk is None or not isinstance(chunk.get("usage"), dict):
            return event
        if not self._include:
            # The usage chunk nobody asked for goes; usage riding on a content chunk is
            # harmless to a naive loop and stays.
            return b"" if chunk.get("choices") == [] else event
        chunk["usage"].update(self._cost.usage_fields(billed=self.billed))
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _usage_at(data: bytes, start: int) -> int:
    """Where the next usage object's key is, from `start` on (-1: none). (`find`, not
    `in`: `bytes in bytes` first tries the needle as an int, a TypeError each time.)"""
    first, second = data.find(_USAGE_OBJECT[0], start), data.find(_USAGE_OBJECT[1], start)
    return second if first < 0 else first if second < 0 else min(first, second)


def _chunk_of(event: bytes) -> dict[str, Any] | None:
    """The JSON object of a `data: {...}` event (how every chunk is written)."""
    data = event_data(event)
    return None if data is None else data_object(data)
