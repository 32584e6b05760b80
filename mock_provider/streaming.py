"""Sending a streamed answer, with the timing and failure controls applied."""

from __future__ import annotations

from dataclasses import dataclass

from mock_provider.asgi import Client, Headers, Send
from mock_provider.controls import Controls


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """A streamed answer in wire bytes: ``head``, one event per content chunk, then ``tail``."""

    headers: Headers
    head: bytes
    chunks: list[bytes]
    tail: bytes


async def send_stream(plan: StreamPlan, controls: Controls, send: Send, client: Client) -> None:
    """Send ``plan``. Without delays it goes out in one write.

    ``stall_after=k``: after k content chunks hold the connection open for ``stall_ms`` (then
    carry on). ``break_after=k``: after k content chunks return without finishing the response,
    so the server closes the connection mid-body (the client sees an incomplete chunked body).
    Both count at most all the chunks: the stall or break then comes before the final events.
    """
    await send({"type": "http.response.start", "status": 200, "headers": plan.headers})
    count = len(plan.chunks)
    stall_at = -1 if controls.stall_after is None else min(controls.stall_after, count)
    break_at = -1 if controls.break_after is None else min(controls.break_after, count)
    delay = controls.chunk_delay_ms / 1000
    pending = [plan.head]
    for index in range(count + 1):
        if index in (stall_at, break_at):
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
            pending.clear()
            if index == stall_at and not await client.sleep(controls.stall_ms / 1000):
                return
            if index == break_at:
                return  # abort: the response is left incomplete on purpose
        if index == count:
            break
        if index and delay:
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
            pending.clear()
            if not await client.sleep(delay):
                return
        pending.append(plan.chunks[index])
    pending.append(plan.tail)
    await send({"type": "http.response.body", "body": b"".join(pending)})
