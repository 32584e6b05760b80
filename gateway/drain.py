"""Graceful shutdown, from SIGTERM to the last commit.

On SIGTERM (or SIGINT) uvicorn stops accepting connections, lets the requests in flight run for
`--timeout-graceful-shutdown`, cancels whatever is left and then runs the lifespan's shutdown.
It tells the app nothing until that last step, so the gateway listens for the signal too
(chained before uvicorn's own handler, which still does its part) and from that moment:

- `/readyz` answers 503 `draining` (a probe that still reaches this process, e.g. through a
  socket that another worker of the pod shares, sees the pod unready at once);
- calls in flight carry on: a JSON call ends within `UPSTREAM_TIMEOUT_S` and is billed as
  usual, and so is a stream that completes within `SHUTDOWN_DRAIN_S`;
- a stream still open `SHUTDOWN_DRAIN_S` after the signal is cut by the gateway itself: an
  in-band error event `50303` and the stream's end if its answer had begun (a 503 `50303` with
  `Retry-After` if not, which the SDKs retry elsewhere). An incomplete stream is not billable
  (DESIGN.md), so its reservation is given back and its usage event says so: settled before
  uvicorn's own deadline would cancel the call with nothing said to the client;
- a call that would start after the cut is refused the same way, before admission.

The lifespan then waits until every admitted call is committed (`settled`) before it closes
Redis, so a call uvicorn cancelled at its deadline still writes its usage event. The timings
that must agree (SHUTDOWN_DRAIN_S < --timeout-graceful-shutdown, preStop + that <
terminationGracePeriodSeconds) are in docs/operations.md "Drain and shutdown".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from common.cancellation import TaskCanceller
from common.errors import ApiError, ErrorCode

logger = logging.getLogger("agentlink.gateway")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SHUTTING_DOWN_MESSAGE = "The gateway is shutting down; retry the request."
# A retry goes to another instance at once: this one no longer accepts connections.
_RETRY_AFTER_S = "1"


class ShuttingDown(ApiError):
    """A stream cut, or a call refused, because this gateway is shutting down (503 `50303`)."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.MAINTENANCE, SHUTTING_DOWN_MESSAGE, headers={"Retry-After": _RETRY_AFTER_S}
        )


class Drain:
    """The process' shutdown state (one per process, from the lifespan)."""

    __slots__ = ("_cut_scheduled", "_idle", "_in_flight", "_streams", "cut", "drain_s",
                 "draining")  # fmt: skip

    def __init__(self, drain_s: float) -> None:
        self.drain_s = drain_s
        self.draining = False  # a shutdown signal has come: unready
        self.cut = False  # SHUTDOWN_DRAIN_S have passed since: open streams are cut
        self._cut_scheduled = False
        self._streams: set[StreamCut] = set()
        self._in_flight = 0  # admitted calls not yet committed
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def on_shutdown_signals(self) -> Iterator[None]:
        """While inside: SIGTERM and SIGINT start the drain, then go on to the handler that
        was there before (uvicorn's). Signals are the main thread's only; elsewhere (a test
        serving the app in a thread) `begin()` is called by hand."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}

        def handle(sig: int, frame: FrameType | None) -> None:
            self.draining = True  # before anything else: the very next probe is unready
            loop.call_soon_threadsafe(self.begin)
            chained: Any = previous[signal.Signals(sig)]
            if callable(chained):
                chained(sig, frame)

        for sig in _SIGNALS:
            signal.signal(sig, handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def begin(self) -> None:
        """Start draining (idempotent): unready now, streams cut after `drain_s`."""
        if self._cut_scheduled:
            return
        self.draining = True
        self._cut_scheduled = True
        logger.info("draining: streams still open in %.1f s will be cut", self.drain_s)
        asyncio.get_running_loop().call_later(self.drain_s, self._cut_streams)

    def _cut_streams(self) -> None:
        self.cut = True
        if self._streams:
            logger.warning("drain deadline: cutting %d open stream(s)", len(self._streams))
        for stream in list(self._streams):
            stream.cut()

    def refuse_after_cut(self) -> None:
        """Before admitting a call: after the cut, a new call would only be cut too."""
        if self.cut:
            raise ShuttingDown

    def watch_stream(self) -> StreamCut:
        """In the task relaying a stream: it is cancelled when the drain cuts streams."""
        return StreamCut(self)

    def admitted_call(self) -> Callable[[], None]:
        """An admitted call: in flight until the returned function is called, once, when its
        commit returned (gateway/settlement.py): what `settled` waits for. (A bound method:
        nothing made per call.)"""
        self._in_flight += 1
        self._idle.clear()
        return self._release

    def _release(self) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    async def settled(self, timeout_s: float) -> bool:
        """At shutdown: wait up to `timeout_s` until every admitted call is committed; False
        if some were not (the reaper gives their reservations back after the deadline)."""
        if self._in_flight:
            logger.info("waiting for %d call(s) to be committed", self._in_flight)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            logger.error("shutdown with %d call(s) not committed", self._in_flight)
            return False
        return True


class StreamCut(TaskCanceller):
    """The drain's hold on one stream: like gateway/disconnect.py's watch, it cancels the
    relaying task; `absorb_cancellation()` tells that cancellation from any other."""

    __slots__ = ("_drain",)

    def __init__(self, drain: Drain) -> None:
        super().__init__()
        self._drain = drain
        drain._streams.add(self)
        if drain.cut:  # opened after the cut (admitted just before it)
            asyncio.get_running_loop().call_soon(self.cut)

    def cut(self) -> None:
        if self in self._drain._streams:  # else stopped meanwhile
            self.cancel_task()

    def stop(self) -> None:
        self._drain._streams.discard(self)
