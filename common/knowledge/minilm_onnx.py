"""all-MiniLM-L6-v2's forward pass on ONNX Runtime: the same BERT as common/knowledge/minilm.py,
about twice as fast on one core.

No .onnx file is shipped or downloaded: the graph is written here with `onnx.helper` from the
same safetensors weights when the model loads (~0.3 s), so the two runtimes cannot drift apart
in their weights. It uses ONNX Runtime's fused CPU kernels (the `com.microsoft` domain): one
`Attention` per layer (query, key and value in one GEMM, softmax with the padding mask inside),
`SkipLayerNormalization` (residual add + bias + layer norm) and `BiasGelu` (bias + exact erf
GELU). fp32 throughout: dynamic int8 quantisation was tried and rejected (it halves the time
again but moves the vectors to cosine 0.88 of sentence-transformers').

Its vectors match sentence-transformers' reference vectors to cosine 0.9999999
(tests/common/knowledge/test_minilm.py runs the same checks on both runtimes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from common.knowledge.minilm import DIMENSION, HEADS, LAYER_NORM_EPS, LAYERS, Floats

# ONNX Runtime 1.30 reads IR versions up to 10 (onnx 1.23 writes 11 by default). Opset 17:
# LayerNormalization is an ONNX op, ReduceSum takes its axes as an input, ReduceL2 as an
# attribute.
_IR_VERSION = 10
_OPSETS = (helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1))
_MS = "com.microsoft"


class _Graph:
    """Nodes and weights accumulated in order; `value` names each intermediate output."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self._count = 0

    def weight(self, name: str, array: NDArray[np.generic]) -> str:
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", outputs: int = 1,
             **attributes: Any) -> str:  # fmt: skip
        self._count += 1
        names = [f"{op}_{self._count}_{index}" for index in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, domain=domain, **attributes))
        return names[0]


def build_graph(weights: Mapping[str, NDArray[np.float32]]) -> onnx.ModelProto:
    """Inputs `input_ids` (int64) and `attention_mask` (int32), both (rows, length); output
    `embedding` (rows, 384): mean-pooled over the real tokens, unit length."""

    def w(name: str) -> Floats:
        return np.asarray(weights[name], dtype=np.float32)

    g = _Graph()
    # Embeddings: word + position (the first `length` rows) + token type 0, then layer norm.
    words = g.node("Gather", [g.weight("words", w("embeddings.word_embeddings.weight")),
                              "input_ids"])  # fmt: skip
    length = g.node("Shape", ["input_ids"], start=1, end=2)
    zero = g.weight("zero", np.array([0], dtype=np.int64))
    positions = g.node("Slice", [g.weight("positions", w("embeddings.position_embeddings.weight")),
                                 zero, length, zero])  # fmt: skip
    token_type = g.weight("token_type", w("embeddings.token_type_embeddings.weight")[0])
    x = g.node("Add", [g.node("Add", [words, positions]), token_type])
    x = g.node("LayerNormalization", [x, g.weight("emb_norm_w", w("embeddings.LayerNorm.weight")),
               g.weight("emb_norm_b", w("embeddings.LayerNorm.bias"))],
               axis=-1, epsilon=LAYER_NORM_EPS)  # fmt: skip
    for index in range(LAYERS):
        p = f"encoder.layer.{index}"

        def param(name: str, array: Floats, layer: int = index) -> str:
            return g.weight(f"l{layer}_{name}", array)

        def dense(name: str, part: str, layer: int = index) -> str:
            # Stored (out, in): transposed once here, so the graph's MatMul is x @ W.
            return param(name, w(f"encoder.layer.{layer}.{part}.weight").T, layer)

        def skip_norm(out: str, residual: str, part: str, names: tuple[str, str, str]) -> str:
            # LayerNorm(out + dense bias + residual), fused: the part's LayerNorm weight and
            # bias, then its dense layer's bias.
            norm_w, norm_b, bias = names
            return g.node("SkipLayerNormalization", [
                out, residual, param(norm_w, w(f"{part}.LayerNorm.weight")),
                param(norm_b, w(f"{part}.LayerNorm.bias")), param(bias, w(f"{part}.dense.bias")),
            ], domain=_MS, epsilon=LAYER_NORM_EPS)  # fmt: skip

        sections = ("query", "key", "value")
        qkv = np.concatenate([w(f"{p}.attention.self.{s}.weight").T for s in sections], axis=1)
        qkv_bias = np.concatenate([w(f"{p}.attention.self.{s}.bias") for s in sections])
        attended = g.node("Attention", [x, param("qkv", qkv), param("qkv_b", qkv_bias),
                          "attention_mask"], domain=_MS, num_heads=HEADS)  # fmt: skip
        attended = g.node("MatMul", [attended, dense("att_out", "attention.output.dense")])
        x = skip_norm(
            attended, x, f"{p}.attention.output", ("att_norm_w", "att_norm_b", "att_out_b")
        )
        inner = g.node("MatMul", [x, dense("inter", "intermediate.dense")])
        inner = g.node("BiasGelu", [inner, param("inter_b", w(f"{p}.intermediate.dense.bias"))],
                       domain=_MS)  # fmt: skip
        out = g.node("MatMul", [inner, dense("out", "output.dense")])
        x = skip_norm(out, x, f"{p}.output", ("out_norm_w", "out_norm_b", "out_b"))
    # Mean pooling over the real tokens, then L2 normalisation (sentence-transformers' Pooling
    # and Normalize modules).
    mask = g.node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    axis1 = g.weight("axis1", np.array([1], dtype=np.int64))
    summed = g.node("ReduceSum", [g.node("Mul", [x, g.node("Unsqueeze", [mask, g.weight(
        "axis2", np.array([2], dtype=np.int64))])]), axis1], keepdims=0)  # fmt: skip
    count = g.node("ReduceSum", [mask, axis1], keepdims=1)
    count = g.node("Max", [count, g.weight("tiny_count", np.array(1e-9, dtype=np.float32))])
    pooled = g.node("Div", [summed, count])
    norm = g.node("ReduceL2", [pooled], axes=[1], keepdims=1)
    norm = g.node("Max", [norm, g.weight("tiny_norm", np.array(1e-12, dtype=np.float32))])
    g.nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["rows", "length"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["rows", "length"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["rows", DIMENSION])],
        initializer=g.weights,
    )  # fmt: skip
    return helper.make_model(graph, ir_version=_IR_VERSION, opset_imports=list(_OPSETS))


class OnnxForward:
    """One forward pass per padded batch; `threads` intra-op threads (1: the calling thread
    only, no thread pool spinning beside the gateway's workers)."""

    def __init__(
        self, weights: Mapping[str, NDArray[np.float32]], *, threads: int = 1,
        shrink_arena: bool = False,
    ) -> None:  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning on a core someone else needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about unused initializers are not ours
        self._session = ort.InferenceSession(
            build_graph(weights).SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        # `shrink_arena`: each run gives back what it grew the arena by, or the process keeps
        # the peak of its largest batch for life (+~135 MiB after 16 chunks of 256 tokens).
        # For the embedding service (questions: no measurable CPU cost, and its RSS is paid
        # on every host); not for the worker, whose batches of chunks follow each other and
        # would each take that memory from the system again (~13% more CPU per batch).
        self._run_options = ort.RunOptions()
        if shrink_arena:
            self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def __call__(self, tokens: NDArray[np.int64], mask: NDArray[np.int32]) -> Floats:
        feeds = {"input_ids": tokens, "attention_mask": mask}
        (unit,) = self._session.run(["embedding"], feeds, self._run_options)
        result: Floats = np.asarray(unit, dtype=np.float32)
        return result
