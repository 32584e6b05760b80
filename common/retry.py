"""Retrying an operation that can fail for a while (a dependency down, a lock conflict).

`retry` runs an operation until it succeeds, an error that is not retryable is raised, the
attempts run out, or a stop event is set; between attempts it waits what `Backoff` says, and
returns early from that wait when stopping. It raises the last error when it gives up, so a
caller decides what giving up means.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from common.cancellation import raise_if_cancelled

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds to wait before retry number `n` (1, 2, ...): `first_s * factor**(n-1)`, at
    most `max_s`."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0

    def delay(self, retry_number: int) -> float:
        return min(self.first_s * self.factor ** (retry_number - 1), self.max_s)


async def wait_or_stop(stop: asyncio.Event | None, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    retry_on: Callable[[BaseException], bool],
    attempts: int | None = None,
    backoff: Backoff | Callable[[int], float] = Backoff(),
    on_failure: Callable[[BaseException, int], Awaitable[None] | None] | None = None,
    stop: asyncio.Event | None = None,
) -> T:
    """The operation's result, after as many attempts as it takes (`attempts=None`: until it
    succeeds or `stop` is set). `on_failure(error, attempt)` runs after each retryable failure
    (to log it, count it, or repair what failed); the last error is raised when giving up."""
    delay = backoff.delay if isinstance(backoff, Backoff) else backoff
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except Exception as error:
            # A cancellation redis-py turned into an error (a blocking read cut off reads as
            # "Connection closed by server") is a cancellation, not a failure to retry.
            raise_if_cancelled()
            if not retry_on(error):
                raise
            if on_failure is not None:
                outcome = on_failure(error, attempt)
                if outcome is not None:
                    await outcome
            if (attempts is not None and attempt >= attempts) or (stop and stop.is_set()):
                raise
            await wait_or_stop(stop, delay(attempt))
            if stop is not None and stop.is_set():
                raise
