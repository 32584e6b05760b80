"""The streaming tap: the relay loop of `OpenAICompatibleProvider` passing a 20-chunk OpenAI
SSE stream through byte for byte while `SseTail` keeps its tail, then reading usage from it
(the usage is the stream's last item).

No network: the body arrives in the pieces a socket would deliver (one SSE event per read,
the usage event split across two reads). Streams run in batches on a dedicated uvloop loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvloop

from gateway.providers.base import ChatStream, Usage
from gateway.providers.openai_compatible import SseTail
from tests.openai_wire import socket_reads

BATCH = 50
CHUNKS = 20
PROMPT_TOKENS, COMPLETION_TOKENS = 412, 20


def sse_pieces() -> list[bytes]:
    """What OpenAI sends for a 20-chunk answer, one event per socket read."""
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
             "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}  # fmt: skip
    return socket_reads([f" word{i}" for i in range(CHUNKS)], usage)


PIECES = sse_pieces()
WIRE = b"".join(PIECES)


async def from_socket() -> AsyncIterator[bytes]:
    for piece in PIECES:
        yield piece


async def relay(chunks: AsyncIterator[bytes]) -> ChatStream:
    """The provider's relay loop without the socket (same statements per chunk)."""
    tap = SseTail()
    async for chunk in chunks:
        tap.feed(chunk)
        yield chunk
    if tap.completed:
        yield tap.usage()


class TapBench:
    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.last: list[bytes | Usage] | None = None

    async def relay_one(self) -> list[bytes | Usage]:
        return [item async for item in relay(from_socket())]

    async def batch(self) -> None:
        for _ in range(BATCH):
            self.last = await self.relay_one()

    def run_batch(self) -> None:
        self.loop.run_until_complete(self.batch())

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def bench() -> Iterator[TapBench]:
    state = TapBench()
    yield state
    state.close()


def test_stream_tap_over_20_chunks(benchmark: Any, bench: TapBench) -> None:
    assert len(WIRE) > 4096  # longer than the tap's tail: the bookkeeping really trims
    benchmark.extra_info["streams_per_round"] = BATCH
    benchmark.pedantic(bench.run_batch, rounds=50, iterations=1, warmup_rounds=2)
    assert bench.last is not None
    *relayed, usage = bench.last
    assert b"".join(piece for piece in relayed if isinstance(piece, bytes)) == WIRE
    assert len(relayed) == len(PIECES)  # a byte-for-byte passthrough, then the usage
    assert usage == Usage(PROMPT_TOKENS, COMPLETION_TOKENS, ("stop",))
