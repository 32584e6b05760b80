"""The circuit breaker on its own, with an injected clock (no sleeping, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.breaker import BreakerSettings, BreakerState, CircuitBreaker

SEED = BreakerSettings(failure_ratio=0.5, interval_s=10.0, open_s=30.0, half_open_calls=5)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    breaker_settings: BreakerSettings = SEED,
) -> tuple[CircuitBreaker, Clock, list[BreakerState]]:
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(breaker_settings, clock=clock, on_state_change=changes.append)
    return breaker, clock, changes


def call(breaker: CircuitBreaker, *, success: bool) -> bool:
    """One call as the gateway makes it: ask, and report the outcome only if it went out."""
    if not breaker.allow():
        return False
    breaker.record(success=success)
    return True


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(SEED.min_calls):
        call(breaker, success=False)
    assert breaker.state is BreakerState.OPEN


def test_starts_closed_and_lets_calls_through() -> None:
    breaker, _, changes = make()
    assert breaker.state is BreakerState.CLOSED
    for _ in range(100):
        assert call(breaker, success=True)
    assert changes == []


def test_opens_at_half_failures_once_min_calls_were_made() -> None:
    breaker, _, changes = make()
    for _ in range(3):
        call(breaker, success=True)
    call(breaker, success=False)
    assert breaker.state is BreakerState.CLOSED  # 4 calls: below min_calls
    call(breaker, success=False)
    assert breaker.state is BreakerState.CLOSED  # 2/5 = 0.4 < 0.5
    call(breaker, success=False)
    assert breaker.state is BreakerState.OPEN  # 3/6 = 0.5
    assert changes == [BreakerState.OPEN]


def test_the_trip_condition_is_checked_on_a_failure() -> None:
    # gobreaker's model: 3 failures then 2 successes (3/5) stays closed; the next failure
    # (4/6) opens it.
    breaker, _, _ = make()
    for success in (False, False, False, True, True):
        call(breaker, success=success)
    assert breaker.state is BreakerState.CLOSED
    call(breaker, success=False)
    assert breaker.state is BreakerState.OPEN


def test_failures_below_min_calls_never_open() -> None:
    breaker, _, _ = make()
    for _ in range(SEED.min_calls - 1):
        call(breaker, success=False)
    assert breaker.state is BreakerState.CLOSED


def test_counts_reset_each_interval() -> None:
    breaker, clock, _ = make()
    for _ in range(4):
        call(breaker, success=False)
    clock.advance(SEED.interval_s)  # a new interval: the four failures are forgotten
    for _ in range(4):
        call(breaker, success=False)
    assert breaker.state is BreakerState.CLOSED
    call(breaker, success=False)  # five failures in this interval
    assert breaker.state is BreakerState.OPEN


def test_successes_of_a_past_interval_do_not_dilute_failures() -> None:
    breaker, clock, _ = make()
    for _ in range(20):
        call(breaker, success=True)
    clock.advance(SEED.interval_s + 1)
    for _ in range(5):
        call(breaker, success=False)
    assert breaker.state is BreakerState.OPEN


def test_open_refuses_for_open_s_then_goes_half_open() -> None:
    breaker, clock, changes = make()
    open_it(breaker)
    clock.advance(SEED.open_s - 0.001)
    assert not breaker.allow()
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.001)
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN]


def test_half_open_admits_exactly_half_open_calls_trials() -> None:
    breaker, clock, _ = make()
    open_it(breaker)
    clock.advance(SEED.open_s)
    allowed = [breaker.allow() for _ in range(SEED.half_open_calls + 3)]
    assert allowed == [True] * SEED.half_open_calls + [False] * 3
    assert breaker.state is BreakerState.HALF_OPEN


def test_all_trials_succeeding_closes_it() -> None:
    breaker, clock, changes = make()
    open_it(breaker)
    clock.advance(SEED.open_s)
    for _ in range(SEED.half_open_calls - 1):
        assert call(breaker, success=True)
        assert breaker.state is BreakerState.HALF_OPEN
    assert call(breaker, success=True)
    assert breaker.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    # Closed again with fresh counts: four failures (below min_calls) do not reopen it.
    for _ in range(SEED.min_calls - 1):
        call(breaker, success=False)
    assert breaker.state is BreakerState.CLOSED


def test_one_failed_trial_opens_it_again_for_a_full_open_s() -> None:
    breaker, clock, changes = make()
    open_it(breaker)
    clock.advance(SEED.open_s)
    assert call(breaker, success=True)
    assert call(breaker, success=False)
    assert breaker.state is BreakerState.OPEN
    clock.advance(SEED.open_s - 1)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    assert changes == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
    ]


def test_a_late_answer_while_open_changes_nothing() -> None:
    breaker, clock, _ = make()
    assert breaker.allow()  # a slow call goes out while closed
    open_it(breaker)
    breaker.record(success=True)  # ... and answers after the breaker opened
    assert breaker.state is BreakerState.OPEN
    clock.advance(SEED.open_s - 1)
    assert not breaker.allow()


@pytest.mark.parametrize("half_open_calls", [1, 2])
def test_half_open_calls_is_configurable(half_open_calls: int) -> None:
    breaker_settings = BreakerSettings(half_open_calls=half_open_calls)
    breaker, clock, _ = make(breaker_settings)
    open_it(breaker)
    clock.advance(breaker_settings.open_s)
    for _ in range(half_open_calls):
        assert breaker.allow()
    assert not breaker.allow()
    for _ in range(half_open_calls):
        breaker.record(success=True)
    assert breaker.state is BreakerState.CLOSED


# -- Property 26: Circuit Breaker Behavior --------------------------------------------------


@dataclass
class Model:
    """The breaker as the seed and DESIGN.md describe it, written from the spec, not the code."""

    settings: BreakerSettings
    now: float
    state: BreakerState = BreakerState.CLOSED
    calls: int = 0
    failures: int = 0
    window_ends: float = 0.0
    open_until: float = 0.0
    trials: int = 0
    trial_successes: int = 0
    changes: list[BreakerState] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.window_ends = self.now + self.settings.interval_s

    def go(self, state: BreakerState) -> None:
        self.state = state
        self.calls = self.failures = self.trials = self.trial_successes = 0
        self.window_ends = self.now + self.settings.interval_s
        if state is BreakerState.OPEN:
            self.open_until = self.now + self.settings.open_s
        self.changes.append(state)

    def call(self, success: bool) -> bool:
        if self.state is BreakerState.OPEN and self.now >= self.open_until:
            self.go(BreakerState.HALF_OPEN)
        if self.state is BreakerState.OPEN:
            return False
        if self.state is BreakerState.HALF_OPEN:
            if self.trials == self.settings.half_open_calls:
                return False
            self.trials += 1
            if not success:
                self.go(BreakerState.OPEN)
            else:
                self.trial_successes += 1
                if self.trial_successes == self.settings.half_open_calls:
                    self.go(BreakerState.CLOSED)
            return True
        if self.now >= self.window_ends:
            self.calls = self.failures = 0
            self.window_ends = self.now + self.settings.interval_s
        self.calls += 1
        if success:
            return True
        # As in gobreaker (the seed's breaker), the trip condition is checked on a failure.
        self.failures += 1
        if (
            self.calls >= self.settings.min_calls
            and self.failures >= self.settings.failure_ratio * self.calls
        ):
            self.go(BreakerState.OPEN)
        return True


class BreakerMachine(RuleBasedStateMachine):
    """Property 26: Circuit Breaker Behavior. Random calls and clock moves; the breaker must
    agree with the model at every step: it opens when the failure ratio reaches the threshold
    within the interval, refuses while open, and recovers only through half-open trials."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.changes: list[BreakerState] = []
        self.breaker = CircuitBreaker(SEED, clock=self.clock, on_state_change=self.changes.append)
        self.model = Model(SEED, self.clock.now)
        self.refused_while_open_for = 0.0

    @rule(success=st.booleans(), repeat=st.integers(1, 6))
    def calls(self, success: bool, repeat: int) -> None:
        for _ in range(repeat):
            went_out = call(self.breaker, success=success)
            assert went_out == self.model.call(success)
            if not went_out and self.breaker.state is BreakerState.OPEN:
                # Refused while open: only ever inside the open period.
                assert self.clock.now < self.model.open_until

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 9.0, 10.0, 11.0, 29.0, 30.0, 31.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now = self.clock.now

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.breaker.state is self.model.state
        assert self.changes == self.model.changes


TestProperty26CircuitBreakerBehavior = BreakerMachine.TestCase
TestProperty26CircuitBreakerBehavior.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)


def test_a_result_from_a_call_let_through_in_an_earlier_state_is_ignored() -> None:
    """A slow call admitted while closed that fails after the breaker went half-open must not
    count as a failed trial (nor a late success as a passed one)."""
    breaker, clock, _ = make()
    assert breaker.allow()
    slow_call = breaker.generation
    open_it(breaker)
    clock.advance(SEED.open_s)
    assert breaker.allow()  # a trial call, half-open
    trial = breaker.generation
    breaker.record(success=False, generation=slow_call)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(success=True, generation=trial)
    for _ in range(SEED.half_open_calls - 1):
        assert breaker.allow()
        breaker.record(success=True, generation=breaker.generation)
    assert breaker.state is BreakerState.CLOSED
