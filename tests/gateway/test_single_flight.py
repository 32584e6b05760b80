"""`SingleFlight`: concurrent loads of one record are one load, and every caller gets its
result (or its error) as a return value."""

from __future__ import annotations

import asyncio

import pytest

from gateway.single_flight import SingleFlight


async def test_concurrent_callers_share_one_load_and_its_result() -> None:
    flights: SingleFlight[str] = SingleFlight()
    loads = 0
    release = asyncio.Event()

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return f"owner-{loads}"

    callers = [asyncio.create_task(flights.run("key-1", load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*callers) == ["owner-1"] * 20
    assert loads == 1
    assert await flights.run("key-1", load) == "owner-2"  # done: the next call loads again


async def test_a_failed_load_fails_every_waiter_and_is_not_remembered() -> None:
    flights: SingleFlight[None] = SingleFlight()
    release = asyncio.Event()

    async def broken() -> None:
        await release.wait()
        raise ConnectionError("postgres is down")

    callers = [asyncio.create_task(flights.run("user-1", broken)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)

    async def working() -> None:
        return None

    assert await flights.run("user-1", working) is None
    with pytest.raises(ConnectionError):
        await flights.run("user-1", broken)


async def test_a_caller_that_leaves_does_not_cancel_the_load_the_others_wait_for() -> None:
    flights: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return "owner"

    first = asyncio.create_task(flights.run("key-1", load))
    others = [asyncio.create_task(flights.run("key-1", load)) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()  # the client of the request that started the load went away
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*others) == ["owner"] * 3
    assert first.cancelled()
    assert loads == 1
