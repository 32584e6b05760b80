"""The embedding service (a process of its own, shared by a host's gateway workers) and the
gateway's client of it, with the real model: same vectors as in process, from the configured
runtime; one service however
many workers start it at once; restarted transparently after it dies; gone with its parent;
a clear error for a service that does not answer; questions over the bound refused at once;
and the client never loads NumPy."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from common.knowledge.backends import build_question_embedder
from common.knowledge.embedding_wire import ERROR, frame, read_frame
from common.knowledge.minilm import RUNTIMES, MiniLM
from common.knowledge.service_embedder import ServiceEmbedder
from common.knowledge.settings import EmbeddingSettings
from common.knowledge.vectors import STORED_DIMENSION, EmbeddingError
from common.settings import SettingsError

TEXTS = ["Is the Tern flask covered by a warranty?", "short", "Orders leave Rotterdam daily."]


def service_pids(socket_path: Path) -> list[int]:
    """Live embedding services serving `socket_path` (by their command lines)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        ours = b"common.knowledge.embedding_service" in argv and str(socket_path).encode() in argv
        if ours and state != "Z":
            pids.append(int(entry.name))
    return pids


def gone(socket_path: Path, timeout_s: float = 15) -> bool:
    deadline = time.monotonic() + timeout_s
    while service_pids(socket_path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


CODE_ROOT = str(Path(__file__).resolve().parents[3])


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    # A short path: a Unix socket's is limited to ~107 bytes.
    return Path(f"/tmp/agentlink-test-{os.getpid()}-{tmp_path.name[-12:]}/embedding.sock")


@pytest_asyncio.fixture
async def service_embedder(socket_path: Path) -> AsyncIterator[ServiceEmbedder]:
    client = ServiceEmbedder(socket_path, timeout_s=30, start_timeout_s=60)
    yield client
    await client.aclose()
    assert gone(socket_path)


async def test_vectors_match_the_model_in_process(service_embedder: ServiceEmbedder) -> None:
    rows = await service_embedder.embed(TEXTS)
    served = np.array([list(row) for row in rows], dtype=np.float32)
    local = MiniLM.load().embed(TEXTS)
    assert served.shape == (len(TEXTS), STORED_DIMENSION)
    assert np.abs(served - local).max() < 1e-6
    question = await service_embedder.embed_question(TEXTS[0])
    assert np.abs(np.array(question) - local[0]).max() < 1e-6
    assert service_embedder.model == "local/all-MiniLM-L6-v2"


async def test_workers_starting_it_at_once_share_one_service(socket_path: Path) -> None:
    workers = [ServiceEmbedder(socket_path, timeout_s=30, start_timeout_s=60) for _ in range(3)]
    try:
        answers = await asyncio.gather(*(w.embed_question(f"q {n}") for n, w in enumerate(workers)))
        assert all(len(answer) == STORED_DIMENSION for answer in answers)
        assert len(service_pids(socket_path)) == 1
        # Concurrent questions of one worker are answered each with its own vector.
        questions = [f"question number {n} about shipping" for n in range(12)]
        rows = await asyncio.gather(*(workers[0].embed_question(q) for q in questions))
        expected = MiniLM.load().embed(questions)
        assert np.abs(np.array([list(r) for r in rows]) - expected).max() < 1e-5
    finally:
        for worker in workers:
            await worker.aclose()
    assert gone(socket_path)


async def test_a_killed_service_is_restarted_by_the_next_question(
    service_embedder: ServiceEmbedder, socket_path: Path
) -> None:
    first = await service_embedder.embed_question("before")
    (pid,) = service_pids(socket_path)
    os.kill(pid, signal.SIGKILL)
    assert gone(socket_path)

    again = await service_embedder.embed_question("before")  # its idle connection is dead: replaced
    assert np.abs(np.array(again) - np.array(first)).max() < 1e-6
    assert service_pids(socket_path) not in ([], [pid])


def test_the_service_dies_with_the_worker_that_started_it(socket_path: Path) -> None:
    worker = textwrap.dedent(f"""
        import asyncio, pathlib
        from common.knowledge.service_embedder import ServiceEmbedder
        async def main():
            client = ServiceEmbedder(pathlib.Path({str(socket_path)!r}), timeout_s=30,
                                     start_timeout_s=60)
            await client.embed_question("hello")
            print("ready", flush=True)
            await asyncio.sleep(3600)
        asyncio.run(main())
    """)
    with subprocess.Popen(
        [sys.executable, "-c", worker], stdout=subprocess.PIPE, env={**os.environ,
        "PYTHONPATH": CODE_ROOT},
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == b"ready"
            assert len(service_pids(socket_path)) == 1
        finally:
            process.kill()
    assert gone(socket_path)


def test_the_gateway_side_never_loads_numpy(socket_path: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, pathlib, sys
        import gateway.knowledge
        from common.knowledge import retrieval, vectors
        from common.knowledge.backends import build_question_embedder
        from common.knowledge.settings import EmbeddingSettings
        async def main():
            settings = EmbeddingSettings.from_env({{"EMBEDDING_SOCKET": {str(socket_path)!r}}})
            client = build_question_embedder(settings)
            vector = await client.embed_question("hello")
            sent = vectors.vector_binary(vector)  # what retrieval sends for it
            await client.aclose()
            print(len(vector), len(sent), "numpy" in sys.modules)
        asyncio.run(main())
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=120, check=True,
        env={**os.environ, "PYTHONPATH": CODE_ROOT},
    )  # fmt: skip
    assert done.stdout.split() == [b"384", b"1540", b"False"]


def loaded_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_the_service_runs_the_configured_runtime(socket_path: Path, runtime: str) -> None:
    settings = EmbeddingSettings.from_env(
        {"EMBEDDING_SOCKET": str(socket_path), "EMBEDDING_RUNTIME": runtime}
    )
    client = build_question_embedder(settings)
    try:
        vector = np.array(await client.embed_question(TEXTS[0]))
        expected = MiniLM.load(runtime=runtime).embed(TEXTS[:1])[0]
        assert np.abs(vector - expected).max() < 1e-6
        (pid,) = service_pids(socket_path)
        assert ("onnxruntime" in loaded_libraries(pid)) == (runtime == "onnx")
    finally:
        await client.aclose()
    assert gone(socket_path)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_the_service_runs_on_its_one_thread(socket_path: Path, runtime: str) -> None:
    """EMBEDDING_THREADS=1: after a batch of questions the service has its event loop's
    thread and at most one more of ONNX Runtime's; the tokenizer started no pool of a thread
    per core (it did: 4 and 3 threads on this 2-core box), nor did OpenBLAS."""
    settings = EmbeddingSettings.from_env(
        {"EMBEDDING_SOCKET": str(socket_path), "EMBEDDING_RUNTIME": runtime}
    )
    client = build_question_embedder(settings)
    try:
        await client.embed_question("start it")
        await asyncio.gather(*(client.embed_question(f"{n}: {TEXTS[1]}") for n in range(16)))
        (pid,) = service_pids(socket_path)
        threads = len(os.listdir(f"/proc/{pid}/task"))
        assert threads <= (2 if runtime == "onnx" else 1), threads
    finally:
        await client.aclose()
    assert gone(socket_path)


async def test_questions_beyond_the_bound_are_refused_at_once(socket_path: Path) -> None:
    client = build_question_embedder(EmbeddingSettings.from_env(
        {"EMBEDDING_SOCKET": str(socket_path), "EMBEDDING_MAX_PENDING": "2"}))  # fmt: skip
    try:
        await client.embed_question("start it")
        answers = await asyncio.gather(
            *(client.embed_question(f"question {n}") for n in range(6)), return_exceptions=True
        )
        served = [a for a in answers if not isinstance(a, BaseException)]
        refused = [a for a in answers if isinstance(a, BaseException)]
        assert [len(vector) for vector in served] == [STORED_DIMENSION] * 2
        assert len(refused) == 4
        assert all(isinstance(e, EmbeddingError) and "busy" in str(e) for e in refused)
        # Answered questions free their places.
        assert len(await client.embed_question("afterwards")) == STORED_DIMENSION
    finally:
        await client.aclose()
    assert gone(socket_path)


def test_an_unknown_runtime_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="EMBEDDING_RUNTIME"):
        EmbeddingSettings.from_env({"EMBEDDING_RUNTIME": "torch"})
    assert EmbeddingSettings.from_env({}).runtime == "onnx"


async def test_a_service_that_does_not_answer_is_a_clear_error(socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    handled = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; the client hangs up
        writer.close()
        handled.set()

    server = await asyncio.start_unix_server(silent, path=str(socket_path))
    client = ServiceEmbedder(socket_path, timeout_s=0.3, start_timeout_s=0.3)
    try:
        began = time.monotonic()
        with pytest.raises(EmbeddingError, match="did not answer in time"):
            await client.embed_question("hello")
        assert time.monotonic() - began < 5
        await asyncio.wait_for(handled.wait(), 5)  # it closed the connection it gave up on
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_a_malformed_request_gets_an_error_frame(
    service_embedder: ServiceEmbedder, socket_path: Path
) -> None:
    await service_embedder.embed_question("start it")
    for payload in (b"not json", b'{"texts": 1}', b"[1, 2]"):
        reader, writer = await asyncio.open_unix_connection(socket_path)
        writer.write(frame(payload))
        answer = await read_frame(reader)
        assert answer.startswith(ERROR), answer
        writer.close()
    assert len(await service_embedder.embed_question("still serving")) == STORED_DIMENSION
