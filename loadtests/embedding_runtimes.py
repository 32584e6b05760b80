"""The local model's two runtimes side by side: ONNX Runtime and NumPy (`EMBEDDING_RUNTIME`).

    python -m loadtests.embedding_runtimes [--rounds 10] [--per-round 20] [--chunks 16]

Each runtime runs in a process of its own, loaded as the embedding service loads it (one
thread: `threads=1`, `OPENBLAS_NUM_THREADS=1`; ONNX Runtime's arena shrunk after each run,
which the worker does not do: its batches cost ~13% less CPU without), so the RSS each adds
is its own: the process' RSS after the imports the service makes before the model, and after
`MiniLM.load` plus one warm-up embedding of each kind. Then the parent alternates short
rounds between the two processes (A, B, A, B, ...), so both see the same load on a shared
machine: per round, `--per-round` embeddings of a 30-word question and `--per-round // 10`
of a batch of `--chunks` chunks of ~1,000 characters (what the worker embeds per file, at
the chunker's default size). It prints p50/p99 wall and CPU per embedding for each runtime
over all rounds, their ratio, the box's load average (compare runs made on an idle
machine), and the most threads each process had (ONNX Runtime's intra-op pool is off at one
thread: the run is on the caller's thread; the tokenizer's own pool adds one per core).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.knowledge_corpus import documents

RUNTIMES = ("onnx", "numpy")
THIRTY_WORDS = (
    "Hello, I bought the refurbished laptop from your European store last spring and now the"
    " battery drains within an hour: is that covered by the warranty, and how do I claim it?"
)
ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def chunk_texts(count: int) -> list[str]:
    """`count` texts of ~1,000 characters, cut from the shipped corpus."""
    text = " ".join(d.text for d in documents())
    return [text[n * 1000 : (n + 1) * 1000] for n in range(count)]


def child(runtime: str, chunks: int) -> None:
    """One runtime: reports its RSS, then answers `kind count` lines with timings (ms)."""
    import numpy  # noqa: F401, PLC0415 - as the embedding service has it before the model

    from common.knowledge.minilm import MiniLM  # noqa: PLC0415

    before = rss_mib()
    model = MiniLM.load(runtime=runtime, threads=1, shrink_arena=True)  # type: ignore[arg-type]
    batch = chunk_texts(chunks)
    model.embed([THIRTY_WORDS])
    model.embed(batch)
    print(json.dumps({"rss_before": before, "rss_after": rss_mib(), "threads": threads()}),
          flush=True)  # fmt: skip
    for line in sys.stdin:
        kind, count = line.split()
        texts = [THIRTY_WORDS] if kind == "question" else batch
        walls, cpus = [], []
        for _ in range(int(count)):
            wall, cpu = time.perf_counter(), time.process_time()
            model.embed(texts)
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        print(json.dumps({"wall": walls, "cpu": cpus, "threads": threads()}), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Runtime:
    def __init__(self, name: str, chunks: int) -> None:
        self.name = name
        environ = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadtests.embedding_runtimes", "--child", name,
             "--chunks", str(chunks)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environ, cwd=ROOT,
        )  # fmt: skip
        self.loaded = self._read()
        self.timings: dict[str, dict[str, list[float]]] = {
            "question": {"wall": [], "cpu": []}, "batch": {"wall": [], "cpu": []}}  # fmt: skip
        self.max_threads = int(self.loaded["threads"])

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} runtime's process died")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def round(self, kind: str, count: int) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{kind} {count}\n")
        self.process.stdin.flush()
        answer = self._read()
        for measure in ("wall", "cpu"):
            self.timings[kind][measure].extend(answer[measure])
        self.max_threads = max(self.max_threads, int(answer["threads"]))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.chunks)
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}; rounds {args.rounds} x "
          f"{args.per_round} questions + {max(1, args.per_round // 10)} batches of "
          f"{args.chunks} chunks, alternating runtimes")  # fmt: skip
    runtimes = [Runtime(name, args.chunks) for name in RUNTIMES]
    try:
        for _ in range(args.rounds):
            for runtime in runtimes:
                runtime.round("question", args.per_round)
            for runtime in runtimes:
                runtime.round("batch", max(1, args.per_round // 10))
    finally:
        for runtime in runtimes:
            runtime.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(f"{'runtime':<8} {'RSS before':>10} {'model RSS':>10} {'threads':>7}   "
          f"{'what':<22} {'wall p50':>8} {'p99':>7} {'CPU p50':>8} {'p99':>7} ms")  # fmt: skip
    for runtime in runtimes:
        before, after = runtime.loaded["rss_before"], runtime.loaded["rss_after"]
        added = after - before
        for kind, label in (("question", "30-word question"),
                            ("batch", f"{args.chunks} x 1,000-char chunks")):  # fmt: skip
            wall, cpu = runtime.timings[kind]["wall"], runtime.timings[kind]["cpu"]
            print(f"{runtime.name:<8} {before:>7.0f} MiB {added:>+6.0f} MiB"
                  f" {runtime.max_threads:>7}   {label:<22} {percentile(wall, 0.5):>8.2f}"
                  f" {percentile(wall, 0.99):>7.2f}"
                  f" {percentile(cpu, 0.5):>8.2f} {percentile(cpu, 0.99):>7.2f}")  # fmt: skip
    onnx, numpy = runtimes
    for kind in ("question", "batch"):
        ratio = percentile(numpy.timings[kind]["wall"], 0.5) / percentile(
            onnx.timings[kind]["wall"], 0.5
        )
        print(f"numpy / onnx wall p50, {kind}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
