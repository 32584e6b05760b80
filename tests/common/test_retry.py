"""`retry`: as many attempts as allowed, waits between them, and the last error when it
gives up (attempts spent, a non-retryable error, or stopping)."""

from __future__ import annotations

import asyncio

import pytest

from common.retry import Backoff, retry


def _no_wait(attempt: int) -> float:
    return 0.0


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [Backoff().delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert Backoff(first_s=0.1, factor=3, max_s=1).delay(3) == pytest.approx(0.9)


async def test_it_retries_until_the_operation_succeeds() -> None:
    failures: list[int] = []
    outcomes = iter([ConnectionError("1"), ConnectionError("2"), "done"])

    async def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = await retry(flaky, retry_on=lambda e: isinstance(e, ConnectionError),
                         backoff=_no_wait, on_failure=lambda e, n: failures.append(n))  # fmt: skip
    assert result == "done"
    assert failures == [1, 2]


async def test_it_raises_the_last_error_when_attempts_run_out() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"attempt {calls}")

    with pytest.raises(ConnectionError, match="attempt 3"):
        await retry(down, retry_on=lambda e: True, attempts=3, backoff=_no_wait)
    assert calls == 3


async def test_an_error_that_is_not_retryable_is_raised_at_once() -> None:
    calls = 0

    async def wrong() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await retry(wrong, retry_on=lambda e: isinstance(e, ConnectionError), backoff=_no_wait)
    assert calls == 1


async def test_stopping_ends_the_wait_and_the_retries() -> None:
    stop = asyncio.Event()
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    async def stop_soon() -> None:
        await asyncio.sleep(0.05)
        stop.set()

    stopper = asyncio.create_task(stop_soon())
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(
            retry(down, retry_on=lambda e: True, backoff=Backoff(first_s=60), stop=stop), 5
        )
    await stopper
    assert calls == 1  # the 60 s wait ended when stopping, and nothing was tried again
