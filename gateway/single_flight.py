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
    """At most one in-flight load per name; concurrent callers get the same result."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}

    async def run(self, name: str, load: Callable[[], Awaitable[T]]) -> T:
        pending = self._inflight.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[name] = future
        try:
            result = await load()
            future.set_result(result)
            return result
        except BaseException as error:
            future.set_exception(error)
            raise
        finally:
            del self._inflight[name]
            if future.done() and not future.cancelled() and future.exception() is not None:
                future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
