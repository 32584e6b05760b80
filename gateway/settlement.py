"""Step 7, settling an admitted call: `commit.lua` keeps or gives back the reservation and
appends the usage event, retried through a Redis blip until the reservation's deadline.

Why retrying cannot bill twice: the commit and the worker's reaper both start from the
reservation and delete it atomically, and a commit that finds none changes nothing. So a
retry after a lost reply, or after the reaper gave the reservation back, is a no-op, and a
complete answer is billed once unless Redis stays away past the deadline (then the reaper
gives the reservation back: unbilled, never billed twice).

Only Redis being away is retried (the connection failed or timed out, or the server said it
is loading, busy or read-only for a moment). Any other error, a refused script above all, is
a bug: logged with its traceback and not retried.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.admission import Admission, Admitter
from gateway.call_record import hot_record
from gateway.call_result import CallResult
from gateway.metrics import GatewayMetrics

logger = logging.getLogger("agentlink.gateway")

# Error replies that mean "not now" rather than "never" (a restarted server loading its data,
# a replica promoted, a script running long, memory full until the worker drains the stream).
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN",
                      "OOM")  # fmt: skip
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 1.0


def redis_is_away(error: RedisError) -> bool:
    if isinstance(error, ResponseError):
        return str(error).startswith(_TRANSIENT_REPLIES)
    return isinstance(error, RedisConnectionError | RedisTimeoutError)


def _nothing() -> None:
    return None


@hot_record
class _Commit:
    """A commit sent, whose reply a callback reads (`Settler._replied`)."""

    admission: Admission
    result: CallResult
    latency_ms: int
    request_id: str
    deadline: float
    returned: Callable[[], None]


class Settler:
    """Settles calls. The commit goes out as the call ends; on the hot client its reply is
    read by a callback, so the call's end (telemetry, the server's end of the request) waits
    for no Redis: with one client it is over while the client reads the answer, instead of
    running when the commit's reply and the client's next request come in together. Retries
    (Redis away) run in the background, so neither an error answer nor the client's next call
    on its connection waits for Redis."""

    def __init__(self, admitter: Admitter, metrics: GatewayMetrics) -> None:
        self._admitter = admitter
        self._metrics = metrics
        self._retrying: set[asyncio.Future[Any]] = set()  # referenced until done

    async def settle(
        self,
        admission: Admission,
        result: CallResult,
        *,
        request_id: str,
        latency_ms: int,
        deadline: float,
        returned: Callable[[], None] = _nothing,
    ) -> None:
        """Commit `result`; while Redis is away, keep retrying with backoff until `deadline`
        (a `time.perf_counter()` value: the reservation's). `returned` is called once the
        first attempt has returned (the drain counts the call in flight until then). On the
        hot client, connected, this returns at once and a callback reads the reply."""
        sent = self._admitter.commit_sent(
            admission, result, latency_ms=latency_ms, request_id=request_id
        )
        if sent is not None:
            self._retrying.add(sent)  # `drain` waits for it
            pending = _Commit(admission, result, latency_ms, request_id, deadline, returned)
            sent.add_done_callback(functools.partial(self._replied, pending))
            return
        commit_again = functools.partial(
            self._admitter.commit, admission, result, latency_ms=latency_ms, request_id=request_id
        )
        try:
            await self._settle_here(commit_again, request_id, deadline)
        finally:
            returned()

    def _replied(self, pending: _Commit, reply: asyncio.Future[Any]) -> None:
        self._retrying.discard(reply)
        pending.returned()
        if reply.cancelled():
            return  # stopped by `drain` at shutdown: the reaper gives the reservation back
        error = reply.exception()
        if error is None:
            return
        request_id = pending.request_id
        commit_again = functools.partial(
            self._admitter.commit, pending.admission, pending.result,
            latency_ms=pending.latency_ms, request_id=request_id,
        )  # fmt: skip
        if isinstance(error, ResponseError) and str(error).startswith("NOSCRIPT"):
            # Redis lost its scripts (a restart): `commit` loads it again (EVAL), at once.
            again = self._settle_here(commit_again, request_id, pending.deadline)
            self._track(asyncio.ensure_future(again))
            return
        if not (isinstance(error, RedisError) and redis_is_away(error)):
            self._metrics.commit_failures.inc()
            logger.error("commit refused", extra={"request_id": request_id}, exc_info=error)
            return
        logger.warning(
            "commit failed, retrying until the reservation deadline",
            extra={"request_id": request_id, "error_code": type(error).__name__},
        )
        self._track(asyncio.ensure_future(self._retry(commit_again, request_id, pending.deadline)))

    async def _settle_here(
        self, commit_again: Callable[[], Awaitable[bool]], request_id: str, deadline: float
    ) -> None:
        """An attempt awaited in the task that runs this (the call's, when `settle` could
        not send at once), then retries in the background while Redis is away."""
        try:
            # Awaited in the call's own task: a task and a shield per call cost ~5% of a JSON
            # call's CPU, for a cancellation that comes only at uvicorn's shutdown deadline.
            await commit_again()
            return
        except asyncio.CancelledError:
            # The call itself was cancelled (uvicorn's shutdown deadline) while its commit was
            # under way: sent or not, it is sent again in a task of its own, which `drain`
            # waits for before Redis closes. Twice is safe: the second finds the reservation
            # settled and changes nothing (see above).
            self._track(asyncio.ensure_future(commit_again()))
            raise
        except RedisError as error:
            if not redis_is_away(error):
                self._metrics.commit_failures.inc()
                logger.exception("commit refused", extra={"request_id": request_id})
                return
            logger.warning(
                "commit failed, retrying until the reservation deadline",
                extra={"request_id": request_id, "error_code": type(error).__name__},
            )
        task = asyncio.create_task(self._retry(commit_again, request_id, deadline))
        self._track(task)

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._retrying.add(task)
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Future[Any]) -> None:
        self._retrying.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._metrics.commit_failures.inc()
            logger.error("commit failed after its call was cancelled", exc_info=error)

    async def _retry(
        self, commit: Callable[[], Awaitable[bool]], request_id: str, deadline: float
    ) -> bool:
        backoff = _FIRST_BACKOFF_S
        while True:
            if time.perf_counter() + backoff >= deadline:
                # The reaper gives the reservation back after its deadline: unbilled.
                self._metrics.commit_failures.inc()
                logger.error(
                    "commit given up at the reservation deadline", extra={"request_id": request_id}
                )
                return False
            self._metrics.commit_retries.inc()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
            try:
                await commit()
            except RedisError as error:
                if redis_is_away(error):
                    continue
                self._metrics.commit_failures.inc()
                logger.exception("commit refused", extra={"request_id": request_id})
                return False
            logger.info("commit settled after retries", extra={"request_id": request_id})
            return True

    async def drain(self, timeout_s: float) -> None:
        """At shutdown: let retries finish for up to `timeout_s`, then stop them (the reaper
        gives back what they could not settle)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        # Until none is left: a reply read by a callback may start a retry meanwhile.
        while self._retrying and (left := until - loop.time()) > 0:
            await asyncio.wait(set(self._retrying), timeout=left)
        unfinished = set(self._retrying)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)
