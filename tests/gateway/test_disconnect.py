"""How a JSON call notices a client that left (gateway/disconnect.py): a wait over within the
lazy window asks `receive` once, without waiting, and leaves nothing behind when the client
is still there; a longer wait gets the watch task, which cancels the waiting task."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.disconnect import LazyDisconnectWatch

DISCONNECT = {"type": "http.disconnect"}


class QueueReceive:
    """A server whose `receive` is a queue (like the test transports)."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in messages:
            self.queue.put_nowait(message)

    async def __call__(self) -> dict[str, Any]:
        return await self.queue.get()


class Cycle:
    """uvicorn's request cycle: `receive` is its method and it says `disconnected`."""

    def __init__(self, *, disconnected: bool) -> None:
        self.disconnected = disconnected
        self.received = 0

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        await asyncio.Event().wait()
        return DISCONNECT


async def test_a_client_still_there_is_asked_without_waiting_and_nothing_is_left_behind() -> None:
    receive = QueueReceive()
    watch = LazyDisconnectWatch(receive, after_s=10)
    watch.stop()
    assert not watch.left_meanwhile()
    assert not receive.queue._getters  # the probe's waiter is gone  # type: ignore[attr-defined]
    receive.queue.put_nowait(DISCONNECT)
    assert await receive() == DISCONNECT  # nothing was consumed or lost


async def test_a_client_that_left_is_seen_past_an_empty_body_message() -> None:
    receive = QueueReceive({"type": "http.request", "body": b"", "more_body": False}, DISCONNECT)
    watch = LazyDisconnectWatch(receive, after_s=10)
    watch.stop()
    assert watch.left_meanwhile()


async def test_uvicorns_cycle_is_read_not_called() -> None:
    for disconnected in (False, True):
        cycle = Cycle(disconnected=disconnected)
        watch = LazyDisconnectWatch(cycle.receive, after_s=10)
        watch.stop()
        assert watch.left_meanwhile() is disconnected
        assert cycle.received == 0


async def test_a_long_wait_gets_a_watch_that_cancels_it_when_the_client_leaves() -> None:
    receive = QueueReceive()
    watch = LazyDisconnectWatch(receive, after_s=0.01)
    try:
        await asyncio.sleep(0.05)  # the watch has started by now
        receive.queue.put_nowait(DISCONNECT)
        await asyncio.sleep(5)
        raise AssertionError("the client left but the wait went on")
    except asyncio.CancelledError:
        assert watch.absorb_cancellation()
    finally:
        watch.stop()
    assert not watch.left_meanwhile()  # the watch saw it; nothing asked twice
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_wait_over_in_time_is_not_cancelled_by_a_later_disconnect() -> None:
    receive = QueueReceive()
    watch = LazyDisconnectWatch(receive, after_s=0.01)
    await asyncio.sleep(0.05)
    watch.stop()
    receive.queue.put_nowait(DISCONNECT)
    await asyncio.sleep(0.05)  # would raise CancelledError if the watch still acted
    assert not watch.absorb_cancellation()
