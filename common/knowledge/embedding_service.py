"""The embedding service: all-MiniLM-L6-v2 in a process of its own, shared by a host's gateway
workers over a Unix socket.

    python -m common.knowledge.embedding_service --socket PATH [--parent-pid PID] [--nice N]
        [--runtime onnx|numpy] [--threads N]

Why a process: the forward pass is ~10 ms (ONNX Runtime; ~20 NumPy) of CPU per question,
NumPy holds the GIL between its kernels, so in a gateway worker it stalls the event loop of
every other call, and
the model's weights and NumPy cost each worker ~120 MiB. Here they are paid once per host,
and the workers stay small and never wait for the model (common/knowledge/service_embedder.py
is their side; common/knowledge/embedding_wire.py the frames).

One service per socket: the first to lock `PATH.lock` serves, any other started beside it
exits at once (two workers may both find no service and start one). It dies with the process
that started it (a gateway worker): the next worker that needs it starts another.

Questions that arrive while the model runs are embedded together in the next batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from common.knowledge.embedding_wire import ERROR, VECTORS, FrameError, frame, read_frame
from common.knowledge.vectors import RUNTIMES

if TYPE_CHECKING:
    from common.knowledge.minilm import MiniLM

logger = logging.getLogger("agentlink.embedding_service")

_PR_SET_PDEATHSIG = 1
_PARENT_CHECK_S = 1.0

Request = tuple[list[str], "asyncio.Future[bytes]"]


def _die_with(parent_pid: int) -> None:
    """SIGTERM when the parent exits (Linux), and a check that it has not already."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def _lock(path: Path) -> int | None:
    """The service lock's descriptor, held for life; None when another service has it."""
    descriptor = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _listen(path: Path) -> socket.socket:
    # Holding the lock, no other service can be using this path: a file there is stale.
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the socket is born 0600: only this user may connect
    try:
        listener.bind(str(path))
    finally:
        os.umask(previous)
    listener.listen(128)
    return listener


class Service:
    def __init__(self, model: MiniLM) -> None:
        self._model = model
        self._queue: asyncio.Queue[Request] = asyncio.Queue()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    texts = orjson.loads(await read_frame(reader))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    writer.write(frame(ERROR + b"the request is not a list of texts"))
                    return
                done: asyncio.Future[bytes] = loop.create_future()
                self._queue.put_nowait((texts, done))
                writer.write(frame(await done))
                await writer.drain()
        except (FrameError, orjson.JSONDecodeError):
            writer.write(frame(ERROR + b"unreadable request"))
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def embed_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let connections that are ready queue their texts too
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            texts = [text for request, _ in batch for text in request]
            try:
                # Blocking on purpose: this process has nothing else to do meanwhile, and
                # what arrives in the meantime waits in the socket to join the next batch.
                vectors = self._model.embed(texts)
            except (OSError, RuntimeError, ValueError) as error:
                failure = ERROR + f"embedding failed: {type(error).__name__}".encode()
                for _, done in batch:
                    done.set_result(failure)
                continue
            row = 0
            for request, done in batch:
                rows = vectors[row : row + len(request)]
                done.set_result(VECTORS + rows.astype("<f4", copy=False).tobytes())
                row += len(request)


async def _serve(listener: socket.socket, model: MiniLM, parent_pid: int | None) -> None:
    service = Service(model)
    server = await asyncio.start_unix_server(service.handle, sock=listener)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    embedding = asyncio.create_task(service.embed_forever())
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _PARENT_CHECK_S)
        if parent_pid is not None and os.getppid() != parent_pid:
            break  # not Linux, or the signal was missed: the parent is gone all the same
    embedding.cancel()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnx")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.parent_pid is not None:
        _die_with(args.parent_pid)
    path: Path = args.socket
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _lock(path) is None:
        return 0  # another service has the socket
    if args.nice:
        os.nice(args.nice)
    # One thread unless told otherwise: the batch is the unit of parallelism here, and more
    # threads would take cores from the gateway's workers on the same host. That holds for the
    # tokenizer too: its batches would start a thread pool of one thread per core.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from common.knowledge.minilm import MiniLM  # noqa: PLC0415 - after the thread count

    listener = _listen(path)
    try:
        # Connections made while the model loads wait in the listen backlog.
        model = MiniLM.load(runtime=args.runtime, threads=args.threads, shrink_arena=True)
        asyncio.run(_serve(listener, model, args.parent_pid))
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
