"""A provider as the hot path calls it: behind its circuit breaker, within the gateway's
timeouts, with the provider metrics recorded once, here.

`GuardedProvider.complete` bounds a whole non-streaming answer by `UPSTREAM_TIMEOUT_S`;
`GuardedProvider.stream` bounds the wait for a stream to open by
`STREAM_FIRST_BYTE_TIMEOUT_S` (the adapters' HTTP session bounds each later read by
`STREAM_IDLE_TIMEOUT_S`). Either way a timeout leaves as `ProviderTimeout`, and the breaker
hears how the attempt ended: only `ProviderError.counts_as_failure` errors (and timeouts)
count against the provider; a cancelled call (the client left) or a bad request does not.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from gateway.breaker import CircuitBreaker
from gateway.metrics import GatewayMetrics
from gateway.providers.base import ChatProvider, ChatStream, Completion
from gateway.providers.errors import BreakerOpen, ProviderError, ProviderTimeout
from gateway.providers.openai_wire import ChatCompletionRequest
from gateway.timers import Timers

_TIMED_OUT = "The model provider timed out."


@dataclass(frozen=True, slots=True)
class ProviderTimeouts:
    complete_s: float  # a whole non-streaming answer
    first_byte_s: float  # a stream, until it opened
    timers: Timers  # what the deadlines run on (asyncio.timeout's rules, cheaper)


@dataclass(slots=True)
class OpenStream:
    """A provider stream that opened: its chunks, then its usage (`chunks`), and the clock
    its time to first token is measured from."""

    chunks: ChatStream
    provider: str
    model: str
    sent_at: float
    _metrics: GatewayMetrics
    _first_seen: bool = False

    def first_chunk(self) -> None:
        """Call on the first chunk relayed: records the time to first token, once."""
        if not self._first_seen:
            self._first_seen = True
            metrics = self._metrics
            metrics.child(metrics.time_to_first_token, self.provider, self.model).observe(
                time.perf_counter() - self.sent_at
            )


class _Attempt:
    """`with` it: entering asks the breaker (BreakerOpen if it refuses) and gives the time
    the attempt started; leaving tells the breaker how it ended (a class, not a generator:
    it is on every call)."""

    __slots__ = ("_breaker", "_generation", "_name")

    def __init__(self, breaker: CircuitBreaker, name: str) -> None:
        self._breaker = breaker
        self._name = name

    def __enter__(self) -> float:
        breaker = self._breaker
        if not breaker.allow():
            raise BreakerOpen(f"The {self._name} provider is failing; try again shortly.")
        self._generation = breaker.generation  # a result from an older state is ignored
        return time.perf_counter()

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        failed = isinstance(error, ProviderError) and error.counts_as_failure
        self._breaker.record(success=not failed, generation=self._generation)


class GuardedProvider:
    def __init__(
        self,
        provider: ChatProvider,
        breaker: CircuitBreaker,
        metrics: GatewayMetrics,
        timeouts: ProviderTimeouts,
    ) -> None:
        self.name = provider.name
        self._provider = provider
        self._breaker = breaker
        self._metrics = metrics
        self._timeouts = timeouts

    async def complete(
        self, request: ChatCompletionRequest, *, model: str, headers: dict[str, str]
    ) -> Completion:
        with self._attempt() as sent_at:
            try:
                async with self._timeouts.timers.deadline(self._timeouts.complete_s):
                    completion = await self._provider.complete(request, headers=headers)
            except TimeoutError:
                raise ProviderTimeout(_TIMED_OUT) from None
        # Successful answers only: a refusal's latency says little about the provider's.
        latency = self._metrics.child(self._metrics.provider_seconds, self.name, model)
        latency.observe(time.perf_counter() - sent_at)
        return completion

    @asynccontextmanager
    async def stream(
        self, request: ChatCompletionRequest, *, model: str, headers: dict[str, str]
    ) -> AsyncIterator[OpenStream]:
        """Open the stream; the body of the `async with` relays it. An error raised there
        (the provider broke off, the client left) is how the attempt ended, for the breaker."""
        with self._attempt() as sent_at:
            try:
                async with AsyncExitStack() as stack:
                    try:
                        async with self._timeouts.timers.deadline(self._timeouts.first_byte_s):
                            opened = await stack.enter_async_context(
                                self._provider.stream(request, headers=headers)
                            )
                    except TimeoutError:
                        raise ProviderTimeout(_TIMED_OUT) from None
                    yield OpenStream(opened, self.name, model, sent_at, self._metrics)
            except TimeoutError:
                raise ProviderTimeout("The model provider stopped sending.") from None
            finally:
                # Whole streams, failed ones included: how long the provider held the call.
                latency = self._metrics.child(self._metrics.provider_seconds, self.name, model)
                latency.observe(time.perf_counter() - sent_at)

    def _attempt(self) -> _Attempt:
        """One call the breaker allows (or refuses), and whose ending it then records."""
        return _Attempt(self._breaker, self.name)

    async def aclose(self) -> None:
        await self._provider.aclose()


__all__ = ["GuardedProvider", "OpenStream", "ProviderTimeouts"]
