"""The hot path's per-call timers, many on one event-loop timer.

Under uvloop every `call_later` is a libuv timer handle, ~2.5 µs to create and cancel, and
`asyncio.timeout` ~4 µs; a JSON call had both (the provider's deadline, the disconnect watch's
start), nearly always cancelled long before they were due. Here a timer is an entry in a heap
(~0.5 µs) and one loop timer is armed for the earliest entry, so each fires when the loop's
own would have; cancelled entries are dropped when they come due, or all at once when they
are most of the heap.

`Timers.deadline(seconds)` is `asyncio.timeout(seconds)` on them (the same rules: the task is
cancelled at the deadline, and that cancellation leaves the block as TimeoutError).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from types import TracebackType

_COMPACT_AT = 512  # cancelled entries tolerated before a rebuild (when they are most)


def _nothing() -> None:
    return None


class Timer:
    __slots__ = ("_timers", "callback", "cancelled")

    def __init__(self, timers: Timers, callback: Callable[[], object]) -> None:
        self._timers = timers
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            # Let go of the callback at once, as the loop's own handles do: it holds the
            # call (its task, its request), and the entry may wait in the heap till it is due.
            self.callback = _nothing
            self._timers.dropped()


class Timers:
    """Create and use inside one event loop (the gateway's lifespan)."""

    __slots__ = ("_armed", "_armed_at", "_cancelled", "_heap", "_loop", "_order")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()  # ties fire in the order they were set
        self._armed: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")
        self._cancelled = 0  # cancelled entries still in the heap

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        when = self._loop.time() + delay
        timer = Timer(self, callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        if when < self._armed_at:
            self._arm(when)
        return timer

    def deadline(self, delay: float) -> Deadline:
        return Deadline(self, delay)

    def dropped(self) -> None:
        self._cancelled += 1
        if self._cancelled > _COMPACT_AT and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _arm(self, when: float) -> None:
        if self._armed is not None:
            self._armed.cancel()
        self._armed_at = when
        self._armed = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._armed, self._armed_at = None, float("inf")
        heap, now = self._heap, self._loop.time()
        while heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[2]
            if timer.cancelled:
                self._cancelled -= 1
                continue
            callback, timer.callback = timer.callback, _nothing
            timer.cancelled = True  # fired: a later cancel() is a no-op
            callback()
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1
        if heap:
            self._arm(heap[0][0])


class Deadline:
    """`async with timers.deadline(s):` as `async with asyncio.timeout(s):`, in one task."""

    __slots__ = ("_cancelling", "_delay", "_expired", "_task", "_timer", "_timers")

    def __init__(self, timers: Timers, delay: float) -> None:
        self._timers = timers
        self._delay = delay
        self._expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._timer = self._timers.call_later(self._delay, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        # Ours only if no one else asked to cancel the task meanwhile (asyncio.timeout's rule).
        expired = self._expired and self._task.uncancel() <= self._cancelling
        if expired and kind is asyncio.CancelledError:
            raise TimeoutError from error
