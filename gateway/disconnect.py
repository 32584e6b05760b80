"""Noticing a client that went away while the gateway waits on the provider.

ASGI reports it as an `http.disconnect` message on `receive` (the request body was read
before admission, so nothing else arrives). `DisconnectWatch` waits for it beside the
provider call and cancels the waiting task when it comes: a stalled provider read or a slow
answer is abandoned at once, the provider's connection is dropped (which stops it), and the
call is settled by the billing rule for a client that left.
"""

from __future__ import annotations

import asyncio

from common.asgi import Receive


class DisconnectWatch:
    """Start it in the task to cancel; `stop()` it before that task answers the client."""

    __slots__ = ("_finished", "_task", "_watcher", "client_gone")

    def __init__(self, receive: Receive) -> None:
        self.client_gone = False
        self._finished = False
        self._task = asyncio.current_task()
        self._watcher = asyncio.create_task(_wait_for_disconnect(receive))
        self._watcher.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, watcher: asyncio.Task[None]) -> None:
        if self._finished or self._task is None or watcher.cancelled():
            return
        self.client_gone = True
        self._task.cancel()

    def absorb_cancellation(self) -> bool:
        """True if a CancelledError was ours (client gone): the task then carries on."""
        if not self.client_gone or self._task is None:
            return False
        self._task.uncancel()
        return True

    def stop(self) -> None:
        self._finished = True
        self._watcher.cancel()


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
