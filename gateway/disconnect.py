"""Noticing a client that went away while the gateway waits on the provider.

ASGI reports it as an `http.disconnect` message on `receive` (the request body was read
before admission, so nothing else arrives). `DisconnectWatch` waits for it beside the
provider call and cancels the waiting task when it comes: a stalled provider read or a slow
answer is abandoned at once, the provider's connection is dropped (which stops it), and the
call is settled by the billing rule for a client that left.

`LazyDisconnectWatch` is the same for a wait that is usually short (a JSON answer): its
watch task starts only once the wait has lasted `after_s`, and a wait over sooner asks
`receive` once, without waiting (`left_meanwhile`), whether the client left meanwhile. So
a fast answer costs no task, and a client that left before it is still not billed; a
client that leaves a slow one is noticed at most `after_s` late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

from common.asgi import Receive
from common.cancellation import TaskCanceller
from gateway.timers import Timers

# Messages a server may still hand over before it says the client left (uvicorn can answer
# one empty `http.request` when the end of the body came in a read of its own).
_PROBES = 3


class DisconnectWatch(TaskCanceller):
    """Start it in the task to cancel (or name `task`); `stop()` it before that task answers
    the client. `absorb_cancellation()` is True for the cancellation it made (client gone)."""

    __slots__ = ("_finished", "_watcher")

    def __init__(self, receive: Receive, task: asyncio.Task[object] | None = None) -> None:
        super().__init__(task)
        self._finished = False
        self._watcher = asyncio.create_task(_wait_for_disconnect(receive))
        self._watcher.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, watcher: asyncio.Task[None]) -> None:
        if self._finished or watcher.cancelled():
            return
        self.cancel_task()

    def stop(self) -> None:
        self._finished = True
        self._watcher.remove_done_callback(self._on_disconnect)
        self._watcher.cancel()


class LazyDisconnectWatch:
    """A `DisconnectWatch` started `after_s` into the wait, in the task that creates it."""

    __slots__ = ("_receive", "_task", "_timer", "_watch")

    def __init__(self, receive: Receive, after_s: float, timers: Timers | None = None) -> None:
        """`timers`: the gateway's (gateway/timers.py), else the loop's own."""
        self._receive = receive
        self._task = asyncio.current_task()
        self._watch: DisconnectWatch | None = None
        call_later = (
            timers.call_later if timers is not None else asyncio.get_running_loop().call_later
        )
        self._timer = call_later(after_s, self._start)

    def _start(self) -> None:
        self._watch = DisconnectWatch(self._receive, self._task)

    def absorb_cancellation(self) -> bool:
        """True if a CancelledError was ours (client gone): the task then carries on."""
        return self._watch is not None and self._watch.absorb_cancellation()

    def stop(self) -> None:
        self._timer.cancel()
        if self._watch is not None:
            self._watch.stop()

    def left_meanwhile(self) -> bool:
        """True if the client had left and no watch was there to see it: asked after
        `stop()`, or before the watch may have started (and before the response ends: some
        servers then say the client left)."""
        return self._watch is None and _gone_already(self._receive)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _gone_already(receive: Receive) -> bool:
    """Whether `receive` says at once that the client left. uvicorn's request cycle says it
    outright (`disconnected`); any other server's `receive` coroutine is run one step, and
    closed if it would wait (the server has seen no disconnect)."""
    disconnected = getattr(getattr(receive, "__self__", None), "disconnected", None)
    if isinstance(disconnected, bool):
        return disconnected
    for _ in range(_PROBES):
        pending = receive()
        if not isinstance(pending, Coroutine):
            return False  # not a coroutine: cannot be asked without waiting
        try:
            pending.send(None)
        except StopIteration as answered:
            if answered.value["type"] == "http.disconnect":
                return True
            continue
        pending.close()
        return False
    return False
