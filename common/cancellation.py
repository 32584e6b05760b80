"""Cancellations to honour and cancellations to take back.

`TaskCanceller` cancels a task on an outside event (a client gone, a drain's cut) and lets
the task tell that cancellation from any other and carry on.

Honouring a cancellation that redis-py swallowed:

redis-py's asyncio client can swallow a cancellation that arrives while a command is in
flight: the command returns as if nothing happened (redis/redis-py#2028, #2551), measured
here for 54 of 60 cancellations of a loop of GETs. A long-running loop of Redis commands
would then go on until some other stop signal came, and a shutdown that cancels it waits
out its whole timeout. The task still says it is being cancelled (`Task.cancelling()`), so
such a loop calls `raise_if_cancelled()` after its Redis awaits.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class TaskCanceller:
    """Cancels one task on some outside event and later tells that cancellation from any
    other (a shutdown, a timeout): the task's `except CancelledError` asks
    `absorb_cancellation()`, which takes back only a cancellation this object made
    (`Task.uncancel`), so the task carries on to settle the call. The gateway's client-gone
    watch and the drain's stream cut are both one."""

    __slots__ = ("_task", "cancelled_task")

    def __init__(self, task: asyncio.Task[object] | None = None) -> None:
        self._task = task or asyncio.current_task()
        self.cancelled_task = False

    def cancel_task(self) -> None:
        if self._task is None:
            return
        self.cancelled_task = True
        self._task.cancel()

    def absorb_cancellation(self) -> bool:
        """True if a CancelledError was this object's: the task then carries on."""
        if not self.cancelled_task or self._task is None:
            return False
        self._task.uncancel()
        return True
