"""A circuit breaker per provider endpoint, with the seed's semantics (gobreaker's model).

- closed: calls pass; counts reset every `interval_s`. When at least `min_calls` calls were
  made in the current interval and the failure ratio reaches `failure_ratio`, it opens.
- open: calls are refused without touching the provider, for `open_s`; then half-open.
- half-open: up to `half_open_calls` trial calls pass; if that many succeed in a row it
  closes, and the first failure opens it again.

Why not pybreaker: its async support is Tornado-based, it trips on consecutive failures
rather than a failure ratio over a window, and it has no limit on half-open trial calls.
This is the ~80 lines we need, with an injectable clock for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_ratio: float = 0.5
    interval_s: float = 10.0
    open_s: float = 30.0
    half_open_calls: int = 5
    min_calls: int = 5


class CircuitBreaker:
    def __init__(
        self,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_state_change = on_state_change
        self.state = BreakerState.CLOSED
        self._calls = 0
        self._failures = 0
        self._window_ends = clock() + settings.interval_s
        self._open_until = 0.0
        self._trials_started = 0
        self._trial_successes = 0
        # Bumped on every state change; a result recorded with an older generation belongs to
        # a call let through in an earlier state and is ignored (as gobreaker does).
        self.generation = 0

    def allow(self) -> bool:
        """May a call go out now? A True from half-open reserves one trial slot."""
        now = self._clock()
        if self.state is BreakerState.OPEN:
            if now < self._open_until:
                return False
            self._enter(BreakerState.HALF_OPEN, now)
        if self.state is BreakerState.HALF_OPEN:
            if self._trials_started >= self._settings.half_open_calls:
                return False
            self._trials_started += 1
            return True
        if now >= self._window_ends:
            self._reset_counts(now)
        return True

    def record(self, *, success: bool, generation: int | None = None) -> None:
        if generation is not None and generation != self.generation:
            return
        now = self._clock()
        if self.state is BreakerState.HALF_OPEN:
            if not success:
                self._enter(BreakerState.OPEN, now)
                return
            self._trial_successes += 1
            if self._trial_successes >= self._settings.half_open_calls:
                self._enter(BreakerState.CLOSED, now)
            return
        if self.state is BreakerState.OPEN:
            return  # a late answer from before it opened changes nothing
        self._calls += 1
        if not success:
            self._failures += 1
            settings = self._settings
            if (
                self._calls >= settings.min_calls
                and self._failures / self._calls >= settings.failure_ratio
            ):
                self._enter(BreakerState.OPEN, now)

    def _enter(self, state: BreakerState, now: float) -> None:
        self.state = state
        self.generation += 1
        self._reset_counts(now)
        self._trials_started = 0
        self._trial_successes = 0
        if state is BreakerState.OPEN:
            self._open_until = now + self._settings.open_s
        if self._on_state_change is not None:
            self._on_state_change(state)

    def _reset_counts(self, now: float) -> None:
        self._calls = 0
        self._failures = 0
        self._window_ends = now + self._settings.interval_s
