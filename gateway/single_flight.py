"""`SingleFlight`: at most one in-flight load per name in this process.

A thousand concurrent requests for one cold record (a key, a user, an agent, an agent
config) make one load; every caller gets that load's result, or its error, as the return
value of `run`. Nothing is remembered once the load is over: caching is the caller's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """At most one in-flight load per name; concurrent callers get the same result.

    The load runs in a task of its own, so a caller that goes away (its request cancelled
    because the client left) stops waiting without cancelling the load the others wait for."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Task[T]] = {}

    async def run(self, name: str, load: Callable[[], Awaitable[T]]) -> T:
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.ensure_future(load())
            self._inflight[name] = task
            # Runs before any waiter resumes: once the load is over, the next call loads again.
            task.add_done_callback(lambda done: self._forget(name, done))
        return await asyncio.shield(task)

    def _forget(self, name: str, done: asyncio.Task[T]) -> None:
        if self._inflight.get(name) is done:
            del self._inflight[name]
